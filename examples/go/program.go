package main

import (
	"github.com/hostup-pulumi/hostup-pulumi/sdk/go/hostup"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// program is the examples/yaml program in Go: a fleet's availability as stack outputs, a gate,
// a command and its (secret) output, and a second HostUp account through an explicit provider.
func program(ctx *pulumi.Context) error {
	conf := config.New(ctx, "")
	vpsID := conf.Require("vpsId")
	command := conf.Get("command")
	if command == "" {
		command = "uname -a"
	}
	otherVpsID := conf.Require("otherVpsId")
	otherBaseURL := conf.Get("otherBaseUrl")
	if otherBaseURL == "" {
		otherBaseURL = "https://cloud.hostup.se"
	}

	other, err := hostup.NewProvider(ctx, "other", &hostup.ProviderArgs{
		ApiKey:  conf.RequireSecret("otherApiKey"),
		BaseUrl: pulumi.String(otherBaseURL),
	})
	if err != nil {
		return err
	}

	// Fails preview and up, naming the VPS and HostUp's reason, unless commands can run.
	gate := hostup.RequireAgentAvailableOutput(ctx, hostup.RequireAgentAvailableOutputArgs{
		VpsId: pulumi.String(vpsID),
	})
	// A fleet in one call: one result per id, in their order.
	fleet := hostup.GetVpsAgentAvailabilitiesOutput(ctx, hostup.GetVpsAgentAvailabilitiesOutputArgs{
		VpsIds: pulumi.StringArray{pulumi.String(vpsID)},
	})
	otherAvailability := hostup.GetVpsAgentAvailabilityOutput(ctx, hostup.GetVpsAgentAvailabilityOutputArgs{
		VpsId: pulumi.String(otherVpsID),
	}, pulumi.Provider(other))

	// Runs only if the gate passed: its vpsId comes from the precondition's result.
	job, err := hostup.NewAgentCommand(ctx, "job", &hostup.AgentCommandArgs{
		VpsId:   gate.VpsId(),
		Command: pulumi.String(command),
	})
	if err != nil {
		return err
	}
	jobResult, err := hostup.NewAgentExecResult(ctx, "jobResult", &hostup.AgentExecResultArgs{
		VpsId:   job.VpsId,
		Pid:     job.Pid,
		RunId:   job.RunId,
		Timeout: pulumi.Float64(120),
	})
	if err != nil {
		return err
	}
	otherJob, err := hostup.NewAgentCommand(ctx, "otherJob", &hostup.AgentCommandArgs{
		VpsId:   pulumi.String(otherVpsID),
		Command: pulumi.String(command),
	}, pulumi.Provider(other))
	if err != nil {
		return err
	}
	otherJobResult, err := hostup.NewAgentExecResult(ctx, "otherJobResult", &hostup.AgentExecResultArgs{
		VpsId: otherJob.VpsId,
		Pid:   otherJob.Pid,
		RunId: otherJob.RunId,
	}, pulumi.Provider(other))
	if err != nil {
		return err
	}

	ctx.Export("available", gate.Available())
	ctx.Export("otherAvailable", otherAvailability.Available())
	ctx.Export("fleet", fleet.Availabilities())
	ctx.Export("pid", job.Pid)
	ctx.Export("exitCode", jobResult.ExitCode)
	ctx.Export("stdout", jobResult.Stdout) // a secret
	ctx.Export("otherExitCode", otherJobResult.ExitCode)
	ctx.Export("otherStdout", otherJobResult.Stdout) // a secret
	return nil
}
