// The examples/yaml program in TypeScript: a fleet's availability as stack outputs, a gate,
// a command and its (secret) output, and a second HostUp account through an explicit provider.
import * as pulumi from "@pulumi/pulumi";
import * as hostup from "@hostup-pulumi/hostup";

export async function program() {
    const config = new pulumi.Config();
    const vpsId = config.require("vpsId");
    const command = config.get("command") ?? "uname -a";
    const otherVpsId = config.require("otherVpsId");

    const other = new hostup.Provider("other", {
        apiKey: config.requireSecret("otherApiKey"),
        baseUrl: config.get("otherBaseUrl") ?? "https://cloud.hostup.se",
    });

    // Fails preview and up, naming the VPS and HostUp's reason, unless commands can run.
    // Awaited, so that a failure ends the program at once, before anything is declared.
    const gate = await hostup.requireAgentAvailable({ vpsId });
    // A fleet in one call: one result per id, in their order.
    const fleet = hostup.getVpsAgentAvailabilitiesOutput({ vpsIds: [vpsId] });
    const otherAvailability = hostup.getVpsAgentAvailabilityOutput(
        { vpsId: otherVpsId }, { provider: other });

    // Runs only if the gate passed: its vpsId comes from the precondition's result.
    const job = new hostup.AgentCommand("job", { vpsId: gate.vpsId, command });
    const jobResult = new hostup.AgentExecResult("jobResult", {
        vpsId: job.vpsId, pid: job.pid, runId: job.runId, timeout: 120,
    });
    const otherJob = new hostup.AgentCommand("otherJob", { vpsId: otherVpsId, command },
        { provider: other });
    const otherJobResult = new hostup.AgentExecResult("otherJobResult", {
        vpsId: otherJob.vpsId, pid: otherJob.pid, runId: otherJob.runId,
    }, { provider: other });

    return {
        available: gate.available,
        otherAvailable: otherAvailability.available,
        fleet: fleet.availabilities,
        pid: job.pid,
        exitCode: jobResult.exitCode,
        stdout: jobResult.stdout,            // a secret
        otherExitCode: otherJobResult.exitCode,
        otherStdout: otherJobResult.stdout,  // a secret
    };
}
