package registry_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/testutil"
)

type refuseAll struct{ why error }

func (a refuseAll) Authorize(ctx context.Context, _ *http.Request, _ registry.Route) (context.Context, error) {
	return ctx, &registry.Error{Code: registry.CodeUnauthorized, Err: a.why}
}

// TestRequestLineSaysWhy: the one info line of a refused or failed request
// says why (the error the client's answer came from), so an operator sees
// why a login was refused without debug logging; a request that succeeds
// has no error attribute.
func TestRequestLineSaysWhy(t *testing.T) {
	var buf testutil.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	why := errors.New(`username "oauth" names no provider; the token's issuer "https://issuer.example" belongs to provider ci`)
	e := newEnv(t, func(o *registry.Options) { o.Logger = log; o.Authorizer = refuseAll{why: why} })
	if r := e.do(req{method: "GET", path: "/v2/team/app/manifests/v1"}); r.status != http.StatusUnauthorized {
		t.Fatalf("status %d", r.status)
	}
	line := buf.String()
	if !strings.Contains(line, "msg=request") || !strings.Contains(line, "status=401") ||
		!strings.Contains(line, `names no provider; the token's issuer`) {
		t.Fatalf("request line: %s", line)
	}

	var ok testutil.Buffer
	e = newEnv(t, func(o *registry.Options) { o.Logger = slog.New(slog.NewTextHandler(&ok, nil)) })
	e.do(req{method: "GET", path: "/v2/"})
	if l := ok.String(); !strings.Contains(l, "status=200") || strings.Contains(l, "error=") {
		t.Fatalf("request line of a success: %s", l)
	}
	// A 404 says what was not found.
	e.do(req{method: "GET", path: "/v2/team/app/manifests/v1"})
	if l := ok.String(); !strings.Contains(l, "status=404") || !strings.Contains(l, "error=") {
		t.Fatalf("request line of a 404: %s", l)
	}
}
