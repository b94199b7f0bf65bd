// Runs program.ts inline through the Automation API (what the end-to-end tests do, since the
// Node.js language host is not built here): one action per call, on the Pulumi CLI under
// $PULUMI_ROOT/bin, with the stack's files in $HOSTUP_INLINE_WORKDIR.
//
//   node bin/inline.js up|preview|preview-no-changes|refresh|destroy
//
// Stack config comes as JSON in $HOSTUP_INLINE_CONFIG ({"key": {"value": "...", "secret": true}}).
// $HOSTUP_INLINE_PROGRAM names another compiled module whose `program` to run instead (the
// benchmark's fleet, bench/languages/fleet.js; it must resolve @pulumi/pulumi to this one).
// Prints one line `HOSTUP_INLINE_RESULT {json}` (the change summary, the outputs, and the
// seconds the action itself took, without the workspace's set-up),
// or `HOSTUP_INLINE_ERROR {json}` and exits 1; the engine's own output goes to stderr.
import { ConfigMap, LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation";
import * as example from "./program";

async function main(action: string): Promise<object> {
    const env = process.env;
    const program: () => Promise<object> = env.HOSTUP_INLINE_PROGRAM
        ? require(env.HOSTUP_INLINE_PROGRAM).program
        : example.program;
    const cmd = await PulumiCommand.get({ root: env.PULUMI_ROOT, skipVersionCheck: true });
    const stack = await LocalWorkspace.createOrSelectStack(
        { stackName: env.HOSTUP_INLINE_STACK ?? "dev", projectName: "hostup-typescript",
          program: async () => program() },
        { pulumiCommand: cmd, workDir: env.HOSTUP_INLINE_WORKDIR,
          projectSettings: { name: "hostup-typescript", runtime: "nodejs" } },
    );
    const config: ConfigMap = JSON.parse(env.HOSTUP_INLINE_CONFIG ?? "{}");
    await stack.setAllConfig(config);
    const log = { onOutput: (text: string) => process.stderr.write(text) };
    let summary: object = {};
    const started = process.hrtime.bigint();
    switch (action) {
        case "up":
            summary = (await stack.up(log)).summary.resourceChanges ?? {};
            break;
        case "preview":
            summary = (await stack.preview(log)).changeSummary;
            break;
        case "preview-no-changes":
            summary = (await stack.preview({ ...log, expectNoChanges: true })).changeSummary;
            break;
        case "refresh":
            summary = (await stack.refresh(log)).summary.resourceChanges ?? {};
            break;
        case "destroy":
            summary = (await stack.destroy(log)).summary.resourceChanges ?? {};
            break;
        default:
            throw new Error(`unknown action ${action}: up, preview, preview-no-changes, refresh or destroy`);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { summary, seconds, outputs: await stack.outputs() };
}

main(process.argv[2]).then(
    (result) => console.log("HOSTUP_INLINE_RESULT " + JSON.stringify(result)),
    (err) => {
        console.log("HOSTUP_INLINE_ERROR " + JSON.stringify({ message: String(err?.message ?? err) }));
        process.exitCode = 1;
    },
);
