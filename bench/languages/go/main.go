// Command fleet is bench/languages.py's fleet stack for the Go SDK, run inline through the
// Automation API like examples/go/inline_test.go: `fleet up` or `fleet destroy`, on the CLI
// under $PULUMI_ROOT/bin, with the stack's files in $HOSTUP_INLINE_WORKDIR and its config as
// JSON in $HOSTUP_INLINE_CONFIG. For each VPS of the `vpsIds` config (JSON): its availability
// exported, a command (`true`) and its result: the same stack as the Python and TypeScript
// programs of the benchmark. Prints the change summary and the seconds the action itself took
// (without the workspace's set-up) as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/hostup-pulumi/hostup-pulumi/sdk/go/hostup"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

func fleet(ctx *pulumi.Context) error {
	var ids []string
	if err := json.Unmarshal([]byte(config.New(ctx, "").Require("vpsIds")), &ids); err != nil {
		return fmt.Errorf("vpsIds: %w", err)
	}
	for i, vpsID := range ids {
		availability := hostup.GetVpsAgentAvailabilityOutput(ctx, hostup.GetVpsAgentAvailabilityOutputArgs{
			VpsId: pulumi.String(vpsID),
		})
		ctx.Export(fmt.Sprintf("available-%d", i), availability.Available())
		cmd, err := hostup.NewAgentCommand(ctx, fmt.Sprintf("cmd-%d", i), &hostup.AgentCommandArgs{
			VpsId: pulumi.String(vpsID), Command: pulumi.String("true"),
		})
		if err != nil {
			return err
		}
		_, err = hostup.NewAgentExecResult(ctx, fmt.Sprintf("out-%d", i), &hostup.AgentExecResultArgs{
			VpsId: cmd.VpsId, Pid: cmd.Pid, RunId: cmd.RunId,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func run(ctx context.Context, action string) (map[string]any, error) {
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{
		Root: os.Getenv("PULUMI_ROOT"), SkipVersionCheck: true,
	})
	if err != nil {
		return nil, err
	}
	project := workspace.Project{Name: "hostup-go-bench", Runtime: workspace.NewProjectRuntimeInfo("go", nil)}
	stack, err := auto.UpsertStackInlineSource(ctx, "bench", "hostup-go-bench", fleet,
		auto.Pulumi(cmd), auto.WorkDir(os.Getenv("HOSTUP_INLINE_WORKDIR")), auto.Project(project))
	if err != nil {
		return nil, err
	}
	conf := auto.ConfigMap{}
	if err := json.Unmarshal([]byte(os.Getenv("HOSTUP_INLINE_CONFIG")), &conf); err != nil {
		return nil, fmt.Errorf("HOSTUP_INLINE_CONFIG: %w", err)
	}
	if err := stack.SetAllConfig(ctx, conf); err != nil {
		return nil, err
	}
	started := time.Now()
	var summary any
	switch action {
	case "up":
		res, err := stack.Up(ctx, optup.ErrorProgressStreams(os.Stderr))
		if err != nil {
			return nil, err
		}
		summary = res.Summary.ResourceChanges
	case "destroy":
		res, err := stack.Destroy(ctx, optdestroy.ErrorProgressStreams(os.Stderr))
		if err != nil {
			return nil, err
		}
		summary = res.Summary.ResourceChanges
	default:
		return nil, fmt.Errorf("unknown action %q: up or destroy", action)
	}
	return map[string]any{"summary": summary, "seconds": time.Since(started).Seconds()}, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fleet up|destroy")
		os.Exit(2)
	}
	result, err := run(context.Background(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	text, _ := json.Marshal(result)
	fmt.Println(string(text))
}
