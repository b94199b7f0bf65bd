// bench/languages.py's fleet stack for the TypeScript SDK (plain JavaScript: no build step).
// Run by examples/typescript/bin/inline.js with HOSTUP_INLINE_PROGRAM pointing here and
// NODE_PATH at examples/typescript/node_modules, so that the one @pulumi/pulumi serves both.
// For each VPS of the `vpsIds` config (JSON): its availability exported, a command (`true`)
// and its result: the same stack as the Python and Go programs of the benchmark.
const pulumi = require("@pulumi/pulumi");
const hostup = require("@hostup-pulumi/hostup");

exports.program = async function program() {
    const ids = JSON.parse(new pulumi.Config().require("vpsIds"));
    const outputs = {};
    ids.forEach((vpsId, i) => {
        outputs[`available-${i}`] = hostup.getVpsAgentAvailabilityOutput({ vpsId }).available;
        const cmd = new hostup.AgentCommand(`cmd-${i}`, { vpsId, command: "true" });
        new hostup.AgentExecResult(`out-${i}`, { vpsId: cmd.vpsId, pid: cmd.pid, runId: cmd.runId });
    });
    return outputs;
};
