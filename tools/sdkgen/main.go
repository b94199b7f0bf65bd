// Command sdkgen writes the TypeScript, Go and Python SDKs of the hostup provider from
// schema.json with Pulumi's own code generators (pkg/v3/codegen, at the CLI's version).
//
//	sdkgen SCHEMA OUT      writes OUT/nodejs, OUT/go and OUT/python
//
// Each language directory is made to hold exactly the generated files: a file that the
// generators no longer write is removed, except what a build adds beside them (see keep).
// `make sdk` runs it through tools/gen-sdk, which builds and caches this program.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/blang/semver"
	gogen "github.com/pulumi/pulumi/pkg/v3/codegen/go"
	"github.com/pulumi/pulumi/pkg/v3/codegen/nodejs"
	"github.com/pulumi/pulumi/pkg/v3/codegen/python"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

// The name the generators put in each file's "do not edit" header.
const tool = "hostup-pulumi sdkgen (make sdk)"

// refuseLoader resolves no other package: the hostup schema references none, so a
// reference to one is a mistake in the schema, reported as such.
type refuseLoader struct{}

func refuse(name string) error {
	return fmt.Errorf("schema.json refers to package %q; the hostup schema must stand alone", name)
}

func (refuseLoader) LoadPackage(pkg string, _ *semver.Version) (*schema.Package, error) {
	return nil, refuse(pkg)
}

func (refuseLoader) LoadPackageV2(_ context.Context, d *schema.PackageDescriptor) (*schema.Package, error) {
	return nil, refuse(d.Name)
}

func (refuseLoader) LoadPackageReference(pkg string, _ *semver.Version) (schema.PackageReference, error) {
	return nil, refuse(pkg)
}

func (refuseLoader) LoadPackageReferenceV2(
	_ context.Context, d *schema.PackageDescriptor,
) (schema.PackageReference, error) {
	return nil, refuse(d.Name)
}

// keep reports whether path (relative to a language directory) is a build's product or a
// lockfile beside the generated files, which a regeneration must leave alone.
func keep(lang, path string) bool {
	first := strings.Split(path, string(filepath.Separator))[0]
	switch lang {
	case "nodejs":
		return first == "node_modules" || first == "bin" || first == "dist" || path == "package-lock.json"
	case "python":
		return first == "build" || strings.HasSuffix(first, ".egg-info") || first == "__pycache__" ||
			strings.Contains(path, "__pycache__")
	}
	return false
}

// bind reads the schema afresh: each generator records its language's settings in the
// package, so every language gets a package of its own.
func bind(raw []byte) (*schema.Package, error) {
	var spec schema.PackageSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("schema.json is not a package schema: %w", err)
	}
	pkg, diags, err := schema.BindSpec(spec, refuseLoader{}, schema.ValidationOptions{})
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("schema.json does not bind: %s", diags.Error())
	}
	return pkg, nil
}

func generate(lang string, raw []byte) (map[string][]byte, error) {
	pkg, err := bind(raw)
	if err != nil {
		return nil, err
	}
	switch lang {
	case "nodejs":
		return nodejs.GeneratePackage(tool, pkg, nil, nil, false, refuseLoader{})
	case "go":
		return gogen.GeneratePackage(tool, pkg, nil)
	case "python":
		return python.GeneratePackage(tool, pkg, nil, refuseLoader{})
	}
	return nil, fmt.Errorf("unknown language %q", lang)
}

// write makes dir hold exactly files (plus what keep spares).
func write(lang, dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var stale []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		if keep(lang, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if _, ok := files[filepath.ToSlash(rel)]; !ok && !d.IsDir() {
			stale = append(stale, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, path := range stale {
		if err := os.Remove(path); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
	}
	return removeEmptyDirs(lang, dir)
}

// removeEmptyDirs drops directories that a removed module left empty.
func removeEmptyDirs(lang, dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() && rel != "." {
			if keep(lang, rel) {
				return filepath.SkipDir
			}
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if entries, err := os.ReadDir(dirs[i]); err == nil && len(entries) == 0 {
			if err := os.Remove(dirs[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func run(schemaPath, out string) error {
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		return err
	}
	for _, lang := range []string{"nodejs", "go", "python"} {
		files, err := generate(lang, raw)
		if err != nil {
			return fmt.Errorf("%s: %w", lang, err)
		}
		if err := write(lang, filepath.Join(out, lang), files); err != nil {
			return fmt.Errorf("%s: %w", lang, err)
		}
	}
	return nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sdkgen SCHEMA OUT  (writes OUT/nodejs, OUT/go, OUT/python)")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "sdkgen:", err)
		os.Exit(1)
	}
}
