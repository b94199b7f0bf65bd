package main

// TestInline runs program.go inline through the Automation API (what the end-to-end tests
// do, since the Go language host is not built here): one action per run, on the Pulumi CLI
// under $PULUMI_ROOT/bin, with the stack's files in $HOSTUP_INLINE_WORKDIR.
//
//	HOSTUP_INLINE_ACTION=up go test -run TestInline -v .
//
// Actions: up, preview, preview-no-changes, refresh, destroy. Stack config comes as JSON in
// $HOSTUP_INLINE_CONFIG ({"key": {"value": "...", "secret": true}}). It prints one line
// `HOSTUP_INLINE_RESULT {json}` (the change summary and the outputs), or
// `HOSTUP_INLINE_ERROR {json}` and fails; the engine's own output goes to stderr.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
)

func TestInline(t *testing.T) {
	action := os.Getenv("HOSTUP_INLINE_ACTION")
	if action == "" {
		t.Skip("set HOSTUP_INLINE_ACTION (and PULUMI_ROOT, HOSTUP_INLINE_WORKDIR) to run the program inline")
	}
	result, err := run(context.Background(), action)
	if err != nil {
		text, _ := json.Marshal(map[string]string{"message": err.Error()})
		fmt.Printf("HOSTUP_INLINE_ERROR %s\n", text)
		t.Fatalf("%s failed", action)
	}
	text, err := json.Marshal(result)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("HOSTUP_INLINE_RESULT %s\n", text)
}

func run(ctx context.Context, action string) (map[string]any, error) {
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{
		Root: os.Getenv("PULUMI_ROOT"), SkipVersionCheck: true,
	})
	if err != nil {
		return nil, err
	}
	stackName := os.Getenv("HOSTUP_INLINE_STACK")
	if stackName == "" {
		stackName = "dev"
	}
	project := workspace.Project{Name: "hostup-go", Runtime: workspace.NewProjectRuntimeInfo("go", nil)}
	stack, err := auto.UpsertStackInlineSource(ctx, stackName, "hostup-go", program,
		auto.Pulumi(cmd), auto.WorkDir(os.Getenv("HOSTUP_INLINE_WORKDIR")), auto.Project(project))
	if err != nil {
		return nil, err
	}
	config := auto.ConfigMap{}
	if raw := os.Getenv("HOSTUP_INLINE_CONFIG"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &config); err != nil {
			return nil, fmt.Errorf("HOSTUP_INLINE_CONFIG: %w", err)
		}
	}
	if err := stack.SetAllConfig(ctx, config); err != nil {
		return nil, err
	}
	var summary any
	switch action {
	case "up":
		res, err := stack.Up(ctx, optup.ErrorProgressStreams(os.Stderr), optup.ProgressStreams(os.Stderr))
		if err != nil {
			return nil, err
		}
		summary = res.Summary.ResourceChanges
	case "preview", "preview-no-changes":
		opts := []optpreview.Option{optpreview.ErrorProgressStreams(os.Stderr), optpreview.ProgressStreams(os.Stderr)}
		if action == "preview-no-changes" {
			opts = append(opts, optpreview.ExpectNoChanges())
		}
		res, err := stack.Preview(ctx, opts...)
		if err != nil {
			return nil, err
		}
		summary = res.ChangeSummary
	case "refresh":
		res, err := stack.Refresh(ctx, optrefresh.ErrorProgressStreams(os.Stderr), optrefresh.ProgressStreams(os.Stderr))
		if err != nil {
			return nil, err
		}
		summary = res.Summary.ResourceChanges
	case "destroy":
		res, err := stack.Destroy(ctx, optdestroy.ErrorProgressStreams(os.Stderr), optdestroy.ProgressStreams(os.Stderr))
		if err != nil {
			return nil, err
		}
		summary = res.Summary.ResourceChanges
	default:
		return nil, fmt.Errorf("unknown action %s: up, preview, preview-no-changes, refresh or destroy", action)
	}
	outputs, err := stack.Outputs(ctx)
	if err != nil {
		return nil, err
	}
	shown := map[string]any{}
	for name, output := range outputs {
		shown[name] = map[string]any{"value": output.Value, "secret": output.Secret}
	}
	return map[string]any{"summary": summary, "outputs": shown}, nil
}
