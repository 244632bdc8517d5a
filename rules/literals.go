package rules

import (
	"errors"
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
)

// literalProblems finds, in the expression src, the calls of expr's parsing
// built-ins whose arguments are constants and that fail: duration("5 mins")
// fails on every event, so a rule that needs it would never act, and only a
// rule test would have shown it. Each call is run once, at load time.
func literalProblems(src string) []string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil // the compiler reports it
	}
	var c literalChecker
	ast.Walk(&tree.Node, &c)
	return c.problems
}

// parsingBuiltins are the built-ins that read a value from a string and fail
// when it does not parse.
func parsingBuiltin(name string) bool {
	switch name {
	case "duration", "date", "timezone", "int", "float", "fromJSON", "fromBase64":
		return true
	}
	return false
}

type literalChecker struct{ problems []string }

func (c *literalChecker) Visit(node *ast.Node) {
	b, ok := (*node).(*ast.BuiltinNode)
	if !ok || !parsingBuiltin(b.Name) || len(b.Arguments) == 0 {
		return
	}
	for _, a := range b.Arguments {
		if !isConstant(a) {
			return
		}
	}
	call := b.String()
	prog, err := expr.Compile(call)
	if err != nil {
		return // not a call this check can run on its own; the rule's own compile judges it
	}
	if _, err := expr.Run(prog, nil); err != nil {
		reason := err.Error()
		var fe *file.Error
		if errors.As(err, &fe) {
			reason = fe.Message
		}
		c.problems = append(c.problems, fmt.Sprintf("%s fails on every event: %s", call, reason))
	}
}

// isConstant reports whether n is built from literals alone.
func isConstant(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
		return true
	case *ast.UnaryNode:
		return isConstant(n.Node)
	case *ast.BinaryNode:
		return isConstant(n.Left) && isConstant(n.Right)
	}
	return false
}
