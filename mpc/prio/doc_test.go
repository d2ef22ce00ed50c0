package prio

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocComments fails when the package or an exported name lacks a doc
// comment.
func TestDocComments(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	hasPackageDoc := false
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		hasPackageDoc = hasPackageDoc || strings.HasPrefix(f.Doc.Text(), "Package prio ")
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && !strings.HasPrefix(d.Doc.Text(), d.Name.Name+" ") {
					t.Errorf("%s: %s lacks a doc comment starting with its name", name, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					var names []*ast.Ident
					doc := d.Doc
					switch s := spec.(type) {
					case *ast.TypeSpec:
						names = []*ast.Ident{s.Name}
						if s.Doc != nil {
							doc = s.Doc
						}
					case *ast.ValueSpec:
						names = s.Names
						if s.Doc != nil {
							doc = s.Doc
						}
					}
					for _, n := range names {
						if n.IsExported() && doc.Text() == "" {
							t.Errorf("%s: %s lacks a doc comment", name, n.Name)
						}
					}
				}
			}
		}
	}
	if !hasPackageDoc {
		t.Error("package prio has no package doc comment")
	}
}
