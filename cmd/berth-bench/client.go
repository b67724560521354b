package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-registry/berth/internal/oci"
)

// checkLoopback refuses any base URL whose host is not a loopback address.
func checkLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-url %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("-url %q: no host", raw)
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("-url %q: only loopback addresses are allowed", raw)
		}
	} else if host != "localhost" {
		return nil, fmt.Errorf("-url %q: use a loopback IP or localhost", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// loopbackOnly is a dialer Control that refuses every non-loopback peer,
// whatever a redirect or a resolver says.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to dial non-loopback address %s", address)
	}
	return nil
}

// newTransport returns a transport for conns connections to the registry:
// no proxy from the environment, no compression, large socket buffers,
// keep-alive with enough idle connections for every client.
func newTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: loopbackOnly}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 10 * time.Minute,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
		ForceAttemptHTTP2:     false,
	}
}

type client struct {
	base *url.URL
	hc   *http.Client
	// postPut: the registry ignores ?digest= on POST, so blobs are pushed by
	// POST (open a session) then PUT ?digest= with the whole body.
	postPut bool
	// auth, when set, is sent as the Authorization header of every request
	// (do, and the manifest loop of manifest-auth).
	auth string
}

func newClient(base *url.URL, conns int) *client {
	return &client{base: base, hc: &http.Client{
		Transport: newTransport(conns),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}}
}

func (c *client) url(path string) string {
	return c.base.String() + path
}

// do sends req and returns the response with its body drained and closed
// when the status is not want.
func (c *client) do(req *http.Request, want ...int) (*http.Response, error) {
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, nil
		}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(msg))
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// ping checks that the base URL answers the /v2/ API.
func (c *client) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return fmt.Errorf("registry not reachable: %w", err)
	}
	drain(resp)
	return nil
}

// pushBlob uploads size bytes from body as the blob d of repo, in one
// monolithic request (or POST + PUT for a registry without the one-request
// form).
func (c *client) pushBlob(ctx context.Context, repo string, d digest.Digest, size int64, body io.Reader) error {
	if c.postPut {
		loc, err := c.startUpload(ctx, repo)
		if err != nil {
			return err
		}
		return c.putUpload(ctx, loc, d, size, body)
	}
	u := c.url("/v2/" + repo + "/blobs/uploads/?digest=" + url.QueryEscape(d.String()))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

func (c *client) startUpload(ctx context.Context, repo string) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v2/"+repo+"/blobs/uploads/"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	drain(resp)
	return c.location(resp)
}

func (c *client) location(resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%s %s: no Location", resp.Request.Method, resp.Request.URL.Path)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("bad Location %q: %w", loc, err)
	}
	return u, nil
}

func (c *client) putUpload(ctx context.Context, loc *url.URL, d digest.Digest, size int64, body io.Reader) error {
	u := *loc
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	if size == 0 {
		body = nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// pushChunked uploads size bytes of body as the blob d of repo in a session:
// POST, one PATCH per chunk bytes (each following the Location of the
// answer before), then PUT ?digest= without a body. It returns the number of
// PATCHes.
func (c *client) pushChunked(ctx context.Context, repo string, d digest.Digest, size, chunk int64, body io.Reader) (int, error) {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return 0, err
	}
	n := 0
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		part := min(chunk, size-off)
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), io.LimitReader(body, part))
		if err != nil {
			return n, err
		}
		req.ContentLength = part
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+part-1))
		resp, err := c.do(req, http.StatusAccepted)
		if err != nil {
			return n, fmt.Errorf("PATCH %d at %d: %w", n+1, off, err)
		}
		drain(resp)
		if loc, err = c.location(resp); err != nil {
			return n, err
		}
		off += part
		n++
	}
	return n, c.putUpload(ctx, loc, d, 0, nil)
}

// probeUpload pushes a tiny blob with POST ?digest= and tells whether the
// registry took it in that one request. A registry that answers 202 opened a
// session instead: the blob is finished with PUT, and postPut is set.
func (c *client) probeUpload(ctx context.Context, repo string, seed uint64) error {
	data := []byte(fmt.Sprintf("berth-bench upload probe %d", seed))
	d := digest.FromBytes(data)
	u := c.url("/v2/" + repo + "/blobs/uploads/?digest=" + url.QueryEscape(d.String()))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode == http.StatusCreated {
		c.postPut = false
		return nil
	}
	loc, err := c.location(resp)
	if err != nil {
		return err
	}
	c.postPut = true
	return c.putUpload(ctx, loc, d, int64(len(data)), bytes.NewReader(data))
}

// blobExists asks HEAD /v2/<repo>/blobs/<d>.
func (c *client) blobExists(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url("/v2/"+repo+"/blobs/"+d.String()), nil)
	if err != nil {
		return false, err
	}
	resp, err := c.do(req, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return false, err
	}
	drain(resp)
	return resp.StatusCode == http.StatusOK, nil
}

// pushManifest PUTs a manifest under ref.
func (c *client) pushManifest(ctx context.Context, repo, ref string, m []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url("/v2/"+repo+"/manifests/"+ref), bytes.NewReader(m))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", oci.MediaTypeImageManifest)
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// getManifest GETs a manifest and returns its bytes.
func (c *client) getManifest(ctx context.Context, repo, ref string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"+repo+"/manifests/"+ref), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", oci.MediaTypeImageManifest)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 4<<20))
}

// image is a pushable image: its blobs and its manifest.
type image struct {
	blobs    [][]byte
	digests  []digest.Digest
	manifest []byte
}

// makeImage builds an image of the given layers and a small config naming
// them; tag makes the config, and so the manifest, unique.
func makeImage(layers [][]byte, tag string) image {
	var im image
	var diffIDs []string
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: oci.MediaTypeImageManifest}
	for _, l := range layers {
		d := digest.FromBytes(l)
		diffIDs = append(diffIDs, d.String())
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: oci.MediaTypeLayerGzip, Digest: d, Size: int64(len(l))})
		im.blobs = append(im.blobs, l)
		im.digests = append(im.digests, d)
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"berth-bench": tag}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cd := digest.FromBytes(cfg)
	m.Config = v1.Descriptor{MediaType: oci.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))}
	im.blobs = append([][]byte{cfg}, im.blobs...)
	im.digests = append([]digest.Digest{cd}, im.digests...)
	im.manifest, _ = json.Marshal(m)
	return im
}

// pushImage pushes every blob, then the manifest under tag.
func (c *client) pushImage(ctx context.Context, repo, tag string, im image) error {
	for i, b := range im.blobs {
		if err := c.pushBlob(ctx, repo, im.digests[i], int64(len(b)), bytes.NewReader(b)); err != nil {
			return fmt.Errorf("blob %d: %w", i, err)
		}
	}
	if err := c.pushManifest(ctx, repo, tag, im.manifest); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
