// Package tracing exports OpenTelemetry spans over OTLP/HTTP ([tracing]).
//
// New returns nil when tracing is off, and every method of a nil *Tracer
// returns what it was given: a disabled tracer puts nothing in the request
// path, not even a no-op span. When on, the spans come from decorators
// around the consumer-side interfaces berth is wired with:
//
//	request      Handler: the API listener's handler (server span, W3C traceparent in)
//	authorize    Authorizer: registry.Authorizer (names the request span by action and repository)
//	authenticate,
//	policy.evaluate  Access: access.Tracer, the gate's hook
//	storage.*    Store: storage.Store as the registry sees it
//	HTTP GET     Transport: the OIDC discovery and key-set fetches (traceparent out)
//
// No span or attribute holds a token, a password, a header, a query string
// or a request path (upload ids and references are capabilities of a sort,
// and paths carry unbounded values): requests are named by their action.
package tracing

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/berth-registry/berth/internal/config"
)

// Tracer starts berth's spans and exports them. A nil *Tracer is tracing
// off.
type Tracer struct {
	tp   *sdktrace.TracerProvider
	tr   trace.Tracer
	prop propagation.TraceContext
}

// instrumentation is the tracer's (instrumentation scope's) name.
const instrumentation = "github.com/berth-registry/berth"

// New builds the exporter and tracer of c; nil, nil when tracing is off.
// version is the service.version attribute. Nothing is sent until the
// first span ends.
func New(ctx context.Context, c config.Tracing, version string, logger *slog.Logger) (*Tracer, error) {
	if !c.Enabled {
		return nil, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("tracing: endpoint: %w", err)
	}
	path := u.Path
	if path == "" || path == "/" {
		path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(path),
		otlptracehttp.WithTimeout(10 * time.Second)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	} else {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tracing: certificate_authority_file: %w", err)
			}
			if tc.RootCAs, err = config.CertPool(pem); err != nil {
				return nil, fmt.Errorf("tracing: certificate_authority_file: %w", err)
			}
		}
		opts = append(opts, otlptracehttp.WithTLSClientConfig(tc))
	}
	if c.HeadersFile != "" {
		h, err := config.ReadHeadersFile(c.HeadersFile)
		if err != nil {
			return nil, fmt.Errorf("tracing: headers_file: %w", err)
		}
		m := make(map[string]string, len(h))
		for k, v := range h {
			m[k] = strings.Join(v, ", ")
		}
		opts = append(opts, otlptracehttp.WithHeaders(m))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", c.ServiceName)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	res := resource.NewWithAttributes("", attrs...)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	)
	// The exporter reports failed exports (collector down: it retries,
	// then drops) through otel's process-wide handler; the default prints
	// to stderr outside the log's format.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: export failed", "err", err)
	}))
	logger.Info("tracing to OTLP collector", "endpoint", u.Scheme+"://"+u.Host+path,
		"sample_ratio", c.SampleRatio, "service_name", c.ServiceName)
	return &Tracer{tp: tp, tr: tp.Tracer(instrumentation)}, nil
}

// Shutdown exports what is buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// ForceFlush exports what is buffered now (tests).
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// start starts a span of kind internal (or the given options') under ctx's.
func (t *Tracer) start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return t.tr.Start(ctx, name, opts...)
}

// end ends span, marking it failed with err's message when err is not nil
// (storage and upstream errors: they name keys and URLs, never credentials).
func end(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
