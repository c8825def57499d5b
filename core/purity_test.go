package core_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// protocolRoots are the directories whose packages must be pure protocol
// cores (DESIGN §3): no goroutines, no clock, no global randomness, no I/O.
var protocolRoots = []string{"core", "broadcast", "agreement", "abc", "hybrid", "smr"}

// forbiddenImports are packages a protocol core must not import.
var forbiddenImports = map[string]string{
	"time":                               "time only as timer events delivered by the runtime",
	"math/rand":                          "randomness only from a seeded source handed in, or the threshold coin",
	"math/rand/v2":                       "randomness only from a seeded source handed in, or the threshold coin",
	"crypto/rand":                        "randomness only from a source handed in by the runtime",
	"net":                                "no I/O in a protocol core",
	"os":                                 "no I/O in a protocol core",
	"os/exec":                            "no I/O in a protocol core",
	"syscall":                            "no I/O in a protocol core",
	"github.com/maftia/maftia/node":      "protocols never import the runtime",
	"github.com/maftia/maftia/transport": "protocols never import the runtime",
	"github.com/maftia/maftia/storage":   "protocols never import the runtime",
}

// impurities parses one Go source file and lists its violations.
func impurities(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if why, ok := forbiddenImports[path]; ok {
			bad = append(bad, name+": imports "+path+" ("+why+")")
		}
	}
	full, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	ast.Inspect(full, func(n ast.Node) bool {
		if g, ok := n.(*ast.GoStmt); ok {
			bad = append(bad, fset.Position(g.Pos()).String()+": go statement (goroutines belong to the runtime)")
		}
		return true
	})
	return bad, nil
}

func TestProtocolPackagesArePure(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	for _, root := range protocolRoots {
		dir := filepath.Join("..", root)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if root != "core" && strings.Contains(err.Error(), "no such file") {
					return fs.SkipDir // package not written yet
				}
				return err
			}
			if d.IsDir() && (d.Name() == "testdata") {
				return fs.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			bad, err := impurities(fset, path, nil)
			if err != nil {
				return err
			}
			checked++
			for _, b := range bad {
				t.Error(b)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d protocol source files checked for purity", checked)
}

// The checker has teeth: a deliberately impure core is caught.
func TestPurityCheckerCatchesImpureCore(t *testing.T) {
	src := `package bad
import ("time"; "math/rand")
func Step() { go func() {}(); _ = time.Now(); _ = rand.Int() }`
	bad, err := impurities(token.NewFileSet(), "bad.go", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 3 {
		t.Fatalf("want 3 violations (time, math/rand, go), got %d: %v", len(bad), bad)
	}
}
