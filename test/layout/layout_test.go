// Package layout holds tests of the repository's shape: which packages may
// import what, package names, and file sizes.
package layout

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/timguard/timguard"

// goPackage is what `go list -json` says of one package.
type goPackage struct {
	Dir          string
	ImportPath   string
	Name         string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// listPackages runs go list on every package of the module.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-json", module+"/...")
	cmd.Dir = repoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the module has more", len(pkgs))
	}
	return pkgs
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// TestGinIsImportedOnlyByHandlersAndTheLoadGeneratorsBaseline: gin stays
// inside handlers/; the load generator's bare baseline handler is the one
// other user.
func TestGinIsImportedOnlyByHandlersAndTheLoadGeneratorsBaseline(t *testing.T) {
	allowed := []string{module + "/handlers", module + "/cmd/loadgen"}
	for _, p := range listPackages(t) {
		if slices.Contains(allowed, p.ImportPath) {
			continue
		}
		for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			if imp == "github.com/gin-gonic/gin" || strings.HasPrefix(imp, "github.com/gin-gonic/") {
				t.Errorf("%s imports %s; only handlers/ (and cmd/loadgen's baseline) may", p.ImportPath, imp)
			}
		}
	}
}

// TestPackageNamesEqualTheirDirectories: a package is named after its
// directory (commands are main).
func TestPackageNamesEqualTheirDirectories(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" {
			if !strings.Contains(p.ImportPath, "/cmd/") && !strings.Contains(p.ImportPath, "/internal/") {
				t.Errorf("%s is a command outside cmd/", p.ImportPath)
			}
			continue
		}
		if want := path.Base(p.ImportPath); p.Name != want {
			t.Errorf("%s is package %s, want %s", p.ImportPath, p.Name, want)
		}
	}
}

// TestTheLoadToolingLivesUnderTest: the load harness and the resilience
// suite are not production packages.
func TestTheLoadToolingLivesUnderTest(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.HasPrefix(p.ImportPath, module+"/internal/harness") || p.ImportPath == module+"/resilience" {
			t.Errorf("%s: the load harness and the resilience suite live under test/", p.ImportPath)
		}
	}
}

// TestNoFileInTheRepositoryIsOverOneMegabyte: binaries, profiles and dumps
// stay out of the repository.
func TestNoFileInTheRepositoryIsOverOneMegabyte(t *testing.T) {
	const limit = 1 << 20
	root := repoRoot(t)
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files (the test reads the files git would commit): %v", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 50 {
		t.Fatalf("git ls-files listed %d files; the repository has more", len(files))
	}
	for _, f := range files {
		fi, err := os.Lstat(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the working tree, not yet committed
		}
		if fi.Mode().IsRegular() && fi.Size() > limit {
			t.Errorf("%s is %d bytes, over 1 MB: keep binaries and generated dumps out of the repository", f, fi.Size())
		}
	}
}
