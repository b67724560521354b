package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/berth-registry/berth/internal/storage"
)

// An object store that does not answer must cost a request little time and
// give the client a 503 it can retry, not a 500 after seconds of retries.
// Three things see to that:
//
//   - the HTTP client's timeouts: connecting (DefaultConnectTimeout) and
//     waiting for the response head once the request is written
//     (DefaultResponseHeaderTimeout; not for the copies and completions the
//     server works on before it answers, see slowOp);
//   - the retryer: at most DefaultMaxAttempts attempts per operation, with a
//     short backoff (retryBackoff), and none after a failed connect or a
//     timeout (the server is not there, or already had its time); the SDK's
//     retry token bucket (500 tokens, 5 per retry) bounds the retries of all
//     operations together during a long outage;
//   - classification: every SDK call passes the classify middleware, which
//     wraps network errors and 5xx answers (other than 501, which says a
//     feature is missing) with storage.ErrUnavailable, as do body reads.
//     The HTTP layer maps that once to 503 UNAVAILABLE with Retry-After.
const (
	DefaultConnectTimeout        = 2 * time.Second
	DefaultResponseHeaderTimeout = 15 * time.Second
	DefaultMaxAttempts           = 3
	// retryBaseDelay is the backoff before the second attempt; it doubles
	// for each further one (with full jitter), up to retryMaxDelay.
	retryBaseDelay = 50 * time.Millisecond
	retryMaxDelay  = 500 * time.Millisecond
)

// isUnavailable reports whether err says the object store cannot be reached
// or cannot serve right now (as opposed to refusing the request).
func isUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, storage.ErrUnavailable) {
		return false
	}
	// No answer (the SDK reports it as a ResponseError with status 0, so
	// this comes first).
	var se *smithyhttp.RequestSendError
	var ne net.Error
	if errors.As(err, &se) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		c := re.HTTPStatusCode()
		return c >= 500 && c != http.StatusNotImplemented
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "SlowDown", "ServiceUnavailable", "InternalError":
			return true
		}
	}
	return false
}

// classify wraps err with storage.ErrUnavailable when isUnavailable.
func classify(err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("%w: %w", err, storage.ErrUnavailable)
	}
	return err
}

// classifyMiddleware is the outermost step of every operation: it sees the
// final error, after the retries.
type classifyMiddleware struct{}

func (classifyMiddleware) ID() string { return "berthClassifyUnavailable" }

func (classifyMiddleware) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		return out, md, classify(err)
	}
	if g, ok := out.Result.(*awss3.GetObjectOutput); ok && g.Body != nil {
		g.Body = classifyBody{g.Body}
	}
	return out, md, nil
}

// classifyBody classifies the errors of reading a response body: the server
// went away in the middle.
type classifyBody struct{ io.ReadCloser }

func (b classifyBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = classify(err)
	}
	return n, err
}

// noRetryAfterFailedConnect: a refused or timed-out connect means nobody
// listens; a timeout means the server already had its time. Retrying either
// only makes the client wait. (A reset on a pooled connection is retried:
// the server may have restarted.)
func noRetryAfterFailedConnect(err error) aws.Ternary {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return aws.FalseTernary
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// retryBackoff is exponential backoff with full jitter from retryBaseDelay,
// capped at retryMaxDelay.
func retryBackoff(attempt int, _ error) (time.Duration, error) {
	d := retryMaxDelay
	if attempt < 8 {
		d = min(retryBaseDelay<<max(attempt-1, 0), retryMaxDelay)
	}
	return time.Duration(rand.Int64N(int64(d)) + 1), nil
}

// newRetryer is the store's retryer (see the comment at the top).
func newRetryer(maxAttempts int) aws.Retryer {
	r := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = retryMaxDelay
		o.Backoff = retry.BackoffDelayerFunc(retryBackoff)
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(noRetryAfterFailedConnect)}, o.Retryables...)
	})
	// Filesystem-backed gateways (versitygw posix) remove a directory when
	// its last object is deleted; a PUT racing with that removal is refused
	// with 409 ExistingObjectIsDirectory and nothing written. It is
	// transient: retry it like a throttling error.
	return retry.AddWithErrorCodes(r, "ExistingObjectIsDirectory")
}

// newHTTPClient is the default HTTP client with the store's timeouts; with
// header == 0 it waits for the response head as long as the request's
// context allows (slowOp).
func newHTTPClient(connect, header time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = connect }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = max(connect, 5*time.Second)
			t.ResponseHeaderTimeout = header
		})
}

// slowOp is the option for the operations the server may work on for long
// before it answers (CopyObject, UploadPartCopy, CompleteMultipartUpload of
// large objects): no response head timeout, when the store built its own
// HTTP client.
func (s *Store) slowOp(o *awss3.Options) {
	if s.slowClient != nil {
		o.HTTPClient = s.slowClient
	}
}
