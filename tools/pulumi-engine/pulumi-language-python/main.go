// Command pulumi-language-python is a small Python language host for the Pulumi
// engine, written for hostup-pulumi.
//
// Why it exists: the upstream language host lives in its own Go module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3), which the
// Go module proxy reachable from our machines does not serve. The engine itself
// (pkg/v3) and the SDK (sdk/v3) are served, and sdk/v3 carries everything needed
// to drive Python: the python/toolchain package (pip/poetry/uv, virtualenvs) and
// the executor script pulumi-language-python-exec. This host is the gRPC glue
// between the two: the engine starts it, it runs
//
//	python -u pulumi-language-python-exec --monitor ... PROGRAM
//
// inside the project's virtualenv, and reports the result.
//
// Implemented: Handshake, GetPluginInfo, GetRequiredPackages, Run (incl. the
// mypy/pyright "typechecker" option), InstallDependencies, RuntimeOptionsPrompts,
// About, GetProgramDependencies, RunPlugin (bare-directory plugins). Not
// implemented (the engine copes or the feature is unused here): code generation
// (GenerateProject/Program/Package), Pack, Link, Template and debugger attach.
//
// tools/install-pulumi builds this with the same -ldflags version stamp as the
// pulumi binary and installs it next to it, together with the executor script.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	executorName = "pulumi-language-python-exec"

	// Exit code the executor uses after it has already shown the user an
	// actionable error: the engine should stop without adding its own message.
	exitShownToUser = 32
)

func main() {
	var tracing, executor string
	flag.StringVar(&tracing, "tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	flag.StringVar(&executor, "use-executor", "", "Run programs with this executor instead of the one next to this binary")
	// Accepted for compatibility with older engines; the options now come from ProgramInfo.
	flag.String("virtualenv", "", "ignored")
	flag.String("root", "", "ignored")
	flag.String("typechecker", "", "ignored")
	flag.String("toolchain", "", "ignored")
	flag.Parse()

	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-python", "pulumi-language-python", tracing)

	if executor == "" {
		self, err := os.Executable()
		if err != nil {
			cmdutil.Exit(fmt.Errorf("locating this executable: %w", err))
		}
		executor = filepath.Join(filepath.Dir(self), executorName)
	}
	if _, err := os.Stat(executor); err != nil {
		cmdutil.Exit(fmt.Errorf("python executor script missing: %w", err))
	}

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		cancel()
		close(stop)
	}()

	// Exit by ourselves if the engine goes away.
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("starting engine health check: %w", err))
		}
	}

	host := &languageHost{executor: executor, engineAddress: engineAddress, tracing: tracing}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("starting language host gRPC server: %w", err))
	}

	// The engine reads the port from our first line of stdout.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host gRPC server stopped: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	executor      string
	engineAddress string
	tracing       string
}

// options turns Pulumi.yaml's runtime.options into toolchain options.
func options(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{}
	if info == nil {
		opts.Toolchain = toolchain.Pip
		return opts, nil
	}
	opts.Root = info.GetRootDirectory()
	opts.ProgramDir = info.GetProgramDirectory()
	raw := info.GetOptions().AsMap()

	str := func(key string) (string, bool, error) {
		v, ok := raw[key]
		if !ok {
			return "", false, nil
		}
		s, ok := v.(string)
		if !ok {
			return "", false, fmt.Errorf("runtime option %q must be a string", key)
		}
		return s, true, nil
	}

	if v, ok, err := str("virtualenv"); err != nil {
		return opts, err
	} else if ok {
		opts.Virtualenv = v
	}
	if v, ok, err := str("typechecker"); err != nil {
		return opts, err
	} else if ok {
		switch v {
		case "mypy":
			opts.Typechecker = toolchain.TypeCheckerMypy
		case "pyright":
			opts.Typechecker = toolchain.TypeCheckerPyright
		default:
			return opts, fmt.Errorf("unsupported typechecker %q (want mypy or pyright)", v)
		}
	}
	if v, ok, err := str("toolchain"); err != nil {
		return opts, err
	} else if ok {
		switch v {
		case "pip":
			opts.Toolchain = toolchain.Pip
		case "poetry":
			opts.Toolchain = toolchain.Poetry
		case "uv":
			opts.Toolchain = toolchain.Uv
		default:
			return opts, fmt.Errorf("unsupported toolchain %q (want pip, poetry or uv)", v)
		}
	}
	return opts, nil
}

func (h *languageHost) Handshake(ctx context.Context,
	req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	hctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	if err := rpcutil.Healthcheck(hctx, h.engineAddress, 5*time.Minute, cancel); err != nil {
		cancel()
		return nil, fmt.Errorf("starting engine health check: %w", err)
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// engineWriters returns writers that forward text to the engine as ephemeral
// log messages (shown in the CLI's progress display), plus a closer.
func (h *languageHost) engineWriters(ctx context.Context) (io.Writer, io.Writer, io.Closer, error) {
	if h.engineAddress == "" {
		return os.Stderr, os.Stderr, io.NopCloser(nil), nil
	}
	conn, err := grpc.NewClient(h.engineAddress,
		grpc.WithTransportCredentials(insecure.NewCredentials()), rpcutil.GrpcChannelOptions())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connecting to the engine: %w", err)
	}
	client := pulumirpc.NewEngineClient(conn)
	stream := rand.Int31() //nolint:gosec // only an identifier for grouping log lines
	return &engineLog{ctx, client, stream, pulumirpc.LogSeverity_INFO},
		&engineLog{ctx, client, stream, pulumirpc.LogSeverity_ERROR}, conn, nil
}

type engineLog struct {
	ctx      context.Context
	client   pulumirpc.EngineClient
	stream   int32
	severity pulumirpc.LogSeverity
}

func (w *engineLog) Write(p []byte) (int, error) {
	_, err := w.client.Log(w.ctx, &pulumirpc.LogRequest{
		Message:   strings.ToValidUTF8(string(p), "\uFFFD"),
		Ephemeral: true,
		StreamId:  w.stream,
		Severity:  w.severity,
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// listPluginsScript prints, as JSON, every installed distribution whose name
// starts with pulumi-/pulumi_ or whose top-level module ships a
// pulumi-plugin.json, with that file's content when present.
const listPluginsScript = `
import json, os, sys
try:
    from importlib import metadata
except ImportError:
    import importlib_metadata as metadata
out, seen = [], set()
for d in metadata.distributions():
    name = d.metadata.get("Name") or ""
    if not name or name.lower() in seen:
        continue
    seen.add(name.lower())
    mod = name.replace("-", "_").replace(".", "_")
    candidates = {mod, mod.lower()}
    plugin = None
    for m in candidates:
        try:
            p = str(d.locate_file(os.path.join(m, "pulumi-plugin.json")))
        except Exception:
            continue
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                plugin = f.read()
            break
    low = name.lower()
    if plugin is None and not (low.startswith("pulumi-") or low.startswith("pulumi_")):
        continue
    out.append({"name": name, "version": d.version or "", "plugin": plugin})
json.dump(out, sys.stdout)
`

type pythonDist struct {
	Name    string  `json:"name"`
	Version string  `json:"version"`
	Plugin  *string `json:"plugin"`
}

// Distributions named pulumi-* that have no resource plugin.
var noPlugin = map[string]bool{
	"pulumi-policy": true, "pulumi_policy": true,
	"pulumi-esc-sdk": true, "pulumi_esc_sdk": true,
}

func (h *languageHost) GetRequiredPackages(ctx context.Context,
	req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	opts, err := options(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	stdout, stderr, closer, err := h.engineWriters(ctx)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	if err := tc.EnsureVenv(ctx, opts.ProgramDir, false, true, stdout, stderr); err != nil {
		return nil, err
	}

	cmd, err := tc.Command(ctx, "-c", listPluginsScript)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("listing installed python packages: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("listing installed python packages: %w", err)
	}
	var dists []pythonDist
	if err := json.Unmarshal(out, &dists); err != nil {
		return nil, fmt.Errorf("parsing installed python packages: %w", err)
	}

	var packages []*pulumirpc.PackageDependency
	for _, d := range dists {
		if noPlugin[d.Name] {
			continue
		}
		dep, err := packageDependency(d)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", d.Name, err)
		}
		if dep != nil {
			packages = append(packages, dep)
		}
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func packageDependency(d pythonDist) (*pulumirpc.PackageDependency, error) {
	dep := &pulumirpc.PackageDependency{Kind: "resource"}
	if d.Plugin != nil {
		var pj plugin.PulumiPluginJSON
		if err := json.Unmarshal([]byte(*d.Plugin), &pj); err != nil {
			return nil, fmt.Errorf("reading pulumi-plugin.json: %w", err)
		}
		if !pj.Resource {
			return nil, nil
		}
		dep.Name, dep.Version, dep.Server = pj.Name, pj.Version, pj.Server
		if p := pj.Parameterization; p != nil {
			dep.Parameterization = &pulumirpc.PackageParameterization{
				Name: p.Name, Version: p.Version, Value: p.Value,
			}
		}
		if p := pj.ExtensionParameterization; p != nil {
			dep.Extension = &pulumirpc.PackageParameterization{
				Name: p.Name, Version: p.Version, Value: p.Value,
			}
		}
	}
	if dep.Name == "" {
		dep.Name = strings.TrimPrefix(strings.TrimPrefix(d.Name, "pulumi-"), "pulumi_")
	}
	if dep.Version == "" {
		v, ok := pep440ToSemver(d.Version)
		if !ok {
			// The plugin version cannot be derived; let the engine load it lazily.
			return nil, nil
		}
		dep.Version = v
	}
	if !strings.HasPrefix(dep.Version, "v") {
		dep.Version = "v" + dep.Version
	}
	return dep, nil
}

// pep440ToSemver converts the common PEP 440 shapes to semver:
// 1.2 -> 1.2.0, 1.2.3a4 -> 1.2.3-alpha.4, 1.2.3b4 -> 1.2.3-beta.4,
// 1.2.3rc4 -> 1.2.3-rc.4, 1.2.3.post4 -> 1.2.3+post4, 1.2.3.dev5 -> 1.2.3+dev5.
// Anything else (epochs, local versions) reports false.
func pep440ToSemver(v string) (string, bool) {
	digits := func(s string) (string, string) {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return s[:i], s[i:]
	}
	var parts []string
	rest := v
	for {
		n, r := digits(rest)
		if n == "" {
			return "", false
		}
		parts = append(parts, n)
		rest = r
		if strings.HasPrefix(rest, ".") {
			if n2, _ := digits(rest[1:]); n2 != "" {
				rest = rest[1:]
				continue
			}
		}
		break
	}
	if len(parts) > 3 {
		return "", false
	}
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	out := strings.Join(parts, ".")

	for _, pre := range []struct{ tag, label string }{{"rc", "rc"}, {"a", "alpha"}, {"b", "beta"}} {
		if strings.HasPrefix(rest, pre.tag) {
			n, r := digits(rest[len(pre.tag):])
			if n == "" {
				return "", false
			}
			out += "-" + pre.label + "." + n
			rest = r
			break
		}
	}
	build := ""
	if strings.HasPrefix(rest, ".post") {
		n, r := digits(rest[len(".post"):])
		build += "post" + n
		rest = r
	}
	if strings.HasPrefix(rest, ".dev") {
		n, r := digits(rest[len(".dev"):])
		build += "dev" + n
		rest = r
	}
	if rest != "" {
		return "", false
	}
	if build != "" {
		out += "+" + build
	}
	return out, true
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{Error: "this python language host does not support --attach-debugger"}, nil
	}
	opts, err := options(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	if err := h.typecheck(ctx, tc, opts, req.GetInfo().GetProgramDirectory()); err != nil {
		return nil, err
	}

	args := []string{h.executor}
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	entry := req.GetInfo().GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("encoding secret config keys: %w", err)
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	if req.GetConfig() != nil {
		env = append(env, "PULUMI_CONFIG="+string(config))
	}
	cmd.Env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(secrets))

	logging.V(5).Infof("language host running: %s", strings.Join(cmd.Args, " "))
	if err := cmd.Run(); err != nil {
		// Let the engine see whatever the program printed before dying.
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code := -1
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
				code = ws.ExitStatus()
			}
			if code == exitShownToUser {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", code)}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("could not run the python executor: %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// typecheck runs mypy or pyright over the program first when Pulumi.yaml asks for it.
func (h *languageHost) typecheck(ctx context.Context, tc toolchain.Toolchain, opts toolchain.PythonOptions,
	programDir string,
) error {
	var checker string
	switch opts.Typechecker {
	case toolchain.TypeCheckerMypy:
		checker = "mypy"
	case toolchain.TypeCheckerPyright:
		checker = "pyright"
	default:
		return nil
	}
	args := []string{"-m", checker}
	if checker == "mypy" {
		if venv, err := tc.VirtualEnvPath(ctx); err == nil && venv != "" {
			if rel, err := filepath.Rel(programDir, venv); err == nil {
				args = append(args, "--exclude", rel)
			}
		}
	}
	args = append(args, programDir)
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return err
	}
	cmd.Dir = programDir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("typechecker %s failed (is it installed in the virtualenv?): %w", checker, err)
	}
	return nil
}

func (h *languageHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := options(req.GetInfo())
	if err != nil {
		return err
	}
	if req.GetIsPlugin() && opts.Toolchain == toolchain.Pip && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()

	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Installing dependencies...")
	if err := tc.InstallDependencies(server.Context(), opts.ProgramDir, req.GetUseLanguageVersionTools(),
		true, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Finished installing dependencies")
	return closer.Close()
}

func (h *languageHost) RuntimeOptionsPrompts(context.Context,
	*pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	opts, err := options(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
	}, nil
}

func (h *languageHost) GetProgramDependencies(ctx context.Context,
	req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	opts, err := options(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, fmt.Errorf("listing python dependencies: %w", err)
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, d := range deps {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return resp, nil
}

// RunPlugin runs a plugin written in Python from its directory (python DIR args...).
func (h *languageHost) RunPlugin(req *pulumirpc.RunPluginRequest,
	server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	opts, err := options(req.GetInfo())
	if err != nil {
		return err
	}
	if opts.Toolchain == toolchain.Pip && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	cmd, err := tc.Command(server.Context(), append([]string{req.GetInfo().GetProgramDirectory()}, req.GetArgs()...)...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd.Dir = req.GetPwd()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, req.GetEnv()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
				return server.Send(&pulumirpc.RunPluginResponse{
					Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(ws.ExitStatus())}, //nolint:gosec
				})
			}
		}
		return fmt.Errorf("running python plugin: %w", err)
	}
	return closer.Close()
}
