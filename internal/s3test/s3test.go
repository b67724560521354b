// Package s3test starts a real S3 server for tests: versitygw on 127.0.0.1
// with its posix backend in a temporary directory and one bucket, as a child
// process. One server serves a whole test binary: Shared starts it on first
// use and Stop (called from TestMain) ends it. Without versitygw on PATH or in
// $GOPATH/bin the test is skipped, unless BERTH_REQUIRE_S3=1 (CI), when it
// fails. scripts/install-test-s3.sh installs it.
//
//	func TestMain(m *testing.M) { code := m.Run(); s3test.Stop(); os.Exit(code) }
//	srv := s3test.Shared(t)
//	st, err := s3.New(ctx, s3.Options{Endpoint: srv.Endpoint, Bucket: s3test.Bucket, ...})
//
// It uses the AWS SDK directly, not berth's storage/s3, so that package's own
// tests can use it too.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berth-registry/berth/internal/testutil"
)

// Credentials and bucket of every server this package starts.
const (
	AccessKey = "berthtestaccess"
	SecretKey = "berthtestsecret-DO-NOT-PRINT-0123456789"
	Bucket    = "berth-test"
	Region    = "us-east-1"
)

// StoreEnv is the environment variable that moves test suites written for
// the filesystem backend onto S3: BERTH_TEST_STORE=s3 (the Makefile's second
// pass over the registry spec tests and the real-client tests).
const StoreEnv = "BERTH_TEST_STORE"

// OnS3 reports whether StoreEnv asks for the S3 backend.
func OnS3() bool { return os.Getenv(StoreEnv) == "s3" }

// Server is one versitygw child process.
type Server struct {
	Endpoint string // http://127.0.0.1:<port>
	Dir      string // the posix backend's directory: <Dir>/<bucket>/<key>

	cmd    *exec.Cmd
	exited chan struct{}
	log    *testutil.Buffer
}

// Config is a [blob_store.s3] table for the server's bucket under prefix.
func (s *Server) Config(prefix string) string {
	return fmt.Sprintf(`[blob_store.s3]
endpoint = %q
bucket = %q
region = %q
key_prefix = %q
access_key_id = %q
secret_key = %q
multipart_part_size = "5MiB"
path_style = true
`, s.Endpoint, Bucket, Region, prefix, AccessKey, SecretKey)
}

var seq atomic.Int64

// Prefix is a key prefix no other test of this process uses.
func Prefix() string { return fmt.Sprintf("t%d-%d", os.Getpid(), seq.Add(1)) }

// Find returns the versitygw binary, or "".
func Find() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared returns the test binary's server, starting it on first use. It
// skips t when versitygw is missing (fails it under BERTH_REQUIRE_S3=1).
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		bin := Find()
		if bin == "" {
			msg := "versitygw not found on PATH or in $GOPATH/bin (scripts/install-test-s3.sh installs it)"
			if os.Getenv("BERTH_REQUIRE_S3") == "1" {
				t.Fatalf("BERTH_REQUIRE_S3=1: %s", msg)
			}
			t.Skip(msg)
		}
		shared.srv, shared.err = Launch(bin)
	}
	if shared.err != nil {
		t.Fatalf("s3test: %v", shared.err)
	}
	return shared.srv
}

// Stop ends the shared server, if one was started, and removes its data.
func Stop() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
		shared.srv = nil
	}
}

// Launch starts a server of bin with the bucket created, on a free port (up
// to three tries).
func Launch(bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", "berth-s3test-")
	if err != nil {
		return nil, err
	}
	var errs []error
	for range 3 {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
		s := &Server{Endpoint: "http://" + addr, Dir: dir, log: &testutil.Buffer{}, exited: make(chan struct{})}
		s.cmd = exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
			"--port", addr, "--quiet", "posix", dir)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start versitygw: %w", err)
		}
		go func() { _ = s.cmd.Wait(); close(s.exited) }()
		if err := s.createBucket(); err != nil {
			s.kill()
			errs = append(errs, fmt.Errorf("versitygw on %s: %w; output:\n%s", addr, err, s.log.String()))
			continue
		}
		return s, nil
	}
	os.RemoveAll(dir)
	return nil, errors.Join(errs...)
}

// Client is an SDK client of the server, signed as AccessKey.
func (s *Server) Client() *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		UsePathStyle: true,
	})
}

func (s *Server) createBucket() error {
	ctx := context.Background()
	c := s.Client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(Bucket)})
		if err == nil {
			_, err = c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(Bucket)})
			return err
		}
		select {
		case <-s.exited:
			return fmt.Errorf("versitygw exited: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Stop kills the server and removes its data.
func (s *Server) Stop() {
	s.kill()
	os.RemoveAll(s.Dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
