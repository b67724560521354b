package s3

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// isolateAWSEnv clears every AWS_* variable for the test and points the
// shared config and credentials files at nothing, so only what the test sets
// can supply credentials.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// blobRoundTrip writes and reads one blob through st.
func blobRoundTrip(t *testing.T, st *Store) {
	t.Helper()
	ctx := t.Context()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	data := randomBytes(9, 1<<20+3)
	u, err := st.BeginUpload(ctx, "creds/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "creds/app", u.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	d := sha256Of(data)
	if _, err := st.CommitUpload(ctx, "creds/app", u.ID, d); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, st, "creds/app", d); !bytes.Equal(got, data) {
		t.Fatal("blob read back differs")
	}
}

// With no keys in the configuration, the store takes credentials from the
// AWS default chain: here the environment.
func TestCredentialsFromEnvironment(t *testing.T) {
	opts := testOptions(t, newPrefix())
	isolateAWSEnv(t)
	opts.AccessKeyID, opts.SecretKey = "", ""

	// Nothing in the chain: the bucket refuses (or the chain finds nothing).
	if err := openStore(t, opts).Ping(t.Context()); err == nil {
		t.Fatal("Ping without any credentials succeeded")
	}

	t.Setenv("AWS_ACCESS_KEY_ID", testAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	blobRoundTrip(t, openStore(t, opts))
}

// Web identity (EKS IRSA, GitHub Actions OIDC to AWS): the SDK trades the
// projected service-account token for temporary credentials at STS
// (AssumeRoleWithWebIdentity), so the registry stores no secret. A fake STS
// checks the token and role and hands out temporary keys; versitygw does not
// take session tokens, so a recording S3 endpoint checks that the bucket
// requests are signed with them.
func TestCredentialsFromWebIdentity(t *testing.T) {
	isolateAWSEnv(t)
	var signedWith atomic.Value
	s3srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		signedWith.Store(r.Header.Get("Authorization") + " token=" + r.Header.Get("X-Amz-Security-Token"))
	}))
	t.Cleanup(s3srv.Close)
	opts := Options{Endpoint: s3srv.URL, Bucket: testBucket, PathStyle: true}

	const role, webAccess = "arn:aws:iam::123456789012:role/berth", "ASIAWEBIDENTITY"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("projected-sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls, refused atomic.Int32
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRoleWithWebIdentity" ||
			r.Form.Get("RoleArn") != role || r.Form.Get("WebIdentityToken") != "projected-sa-token" {
			refused.Add(1)
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>no</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>web-secret</SecretAccessKey><SessionToken>session</SessionToken><Expiration>%s</Expiration></Credentials>
<SubjectFromWebIdentityToken>system:serviceaccount:registry:berth</SubjectFromWebIdentityToken>
<AssumedRoleUser><Arn>%s/berth</Arn><AssumedRoleId>AROA:berth</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult>
<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, webAccess, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), role)
	}))
	t.Cleanup(sts.Close)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_ROLE_ARN", role)
	t.Setenv("AWS_ROLE_SESSION_NAME", "berth")
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)

	if err := openStore(t, opts).Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if calls.Load() == 0 || refused.Load() != 0 {
		t.Fatalf("STS: %d calls, %d refused; want the web identity exchanged", calls.Load(), refused.Load())
	}
	got, _ := signedWith.Load().(string)
	if !strings.Contains(got, "Credential="+webAccess+"/") || !strings.HasSuffix(got, " token=session") {
		t.Fatalf("bucket request signed as %q; want the STS credentials", got)
	}

	// A wrong role is refused by STS, and so is every storage call.
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/other")
	if err := openStore(t, opts).Ping(t.Context()); err == nil {
		t.Fatal("Ping with a refused web identity succeeded")
	}
	if refused.Load() == 0 {
		t.Fatal("STS never saw the wrong role")
	}
}
