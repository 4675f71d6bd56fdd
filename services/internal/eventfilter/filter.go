// Package eventfilter decides which events a destination receives and what
// of them it may see: a filter is a CEL expression over the event
// (`event.target.type == "runs" && event.outcome.result != "SUCCESS"`),
// compiled and type-checked against the event schema when the
// configuration is read, and a redaction is a list of field paths, each
// dropped, masked or hashed.
//
// Field names are the schema's (proto) names, in CEL and in paths alike:
// event.request.ip_address, actor.email.
package eventfilter

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/interpreter"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
)

// Limits on a filter: a hostile expression can neither be huge nor cost
// unbounded work per event.
const (
	MaxFilterBytes = 4 << 10
	// MaxCost bounds one evaluation in CEL's cost units (about one per
	// field access or comparison); a filter whose worst case exceeds it is
	// refused when compiled.
	MaxCost = 10_000
)

// Filter is a compiled filter. It is safe for concurrent use.
type Filter struct {
	src string
	prg cel.Program
}

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			cel.Types(&auditlogv1.AuditEvent{}),
			cel.Variable("event", cel.ObjectType("auditlog.v1.AuditEvent")),
		)
	})
	return env, envErr
}

// CompileFilter parses and type-checks expr against the event schema. The
// error says where the problem is (line:column) and what it is: an unknown
// field, a type mismatch, an expression that is not a bool.
func CompileFilter(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("is empty")
	}
	if len(expr) > MaxFilterBytes {
		return nil, fmt.Errorf("is %d bytes, over the %d byte limit", len(expr), MaxFilterBytes)
	}
	e, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("filter environment: %w", err)
	}
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(iss.Err().Error(), "ERROR: <input>:"))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must be a condition (a bool), not %s", ast.OutputType())
	}
	if est, err := e.EstimateCost(ast, noSizes{}); err == nil && est.Max > MaxCost {
		return nil, fmt.Errorf("may cost up to %d units an event, over the limit of %d", est.Max, MaxCost)
	}
	// The estimate above is a worst case over every event, so evaluation
	// runs without CEL's cost tracker, which took 40 % of an evaluation.
	// FuzzCompileFilter checks that an accepted filter's actual cost on a
	// large event stays within MaxCost.
	prg, err := e.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return &Filter{src: expr, prg: prg}, nil
}

// String is the filter's source.
func (f *Filter) String() string { return f.src }

// Match reports whether ev passes the filter. An error (a field read on an
// absent message is not one: it reads as empty) means the filter could not
// decide; the caller delivers the event and counts the error.
func (f *Filter) Match(ev *auditlogv1.AuditEvent) (bool, error) {
	out, _, err := f.prg.Eval(eventActivation{ev})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("filter gave %T, not a bool", out.Value())
	}
	return b, nil
}

// eventActivation binds the one variable, without the map an Eval of a
// map[string]any builds for every event.
type eventActivation struct{ ev *auditlogv1.AuditEvent }

func (a eventActivation) ResolveName(name string) (any, bool) {
	if name == "event" {
		return a.ev, true
	}
	return nil, false
}

func (eventActivation) Parent() interpreter.Activation { return nil }

// noSizes leaves every size to CEL's default estimate.
type noSizes struct{}

func (noSizes) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }

func (noSizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}
