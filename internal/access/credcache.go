package access

import (
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/policy"
)

// credCache remembers what a stateless credential resolved to, keyed by the
// exact Authorization header value: the identity (until the credential
// expires, auth.Identity.Expires) and the access decisions taken for it. A
// `docker pull` sends the same header dozens of times; with the cache, each
// request after the first is a map lookup instead of a hash of the token, a
// claims copy and a CEL evaluation.
//
// Only credentials whose verification sets Identity.Expires are remembered
// (OIDC ID tokens and registry access tokens, whose validity is a pure function
// of the token and the clock). Session tokens, which count uses, and static
// users are checked every time by their own caches. The key is the header
// itself, compared in full: no hash collision can map one credential onto
// another identity. A configuration reload builds a new Authenticator, so
// removed providers or changed policies never see an old entry.
type credCache struct {
	mu sync.RWMutex
	m  map[string]*credEntry
}

// Bounds. A header is at most maxCredentialLen, so the cache holds at most
// maxCredEntries × 32 KiB, in practice × 2 KiB (a typical CI ID token).
const (
	maxCredEntries     = 1024
	maxDecisionEntries = 64
	// maxAnonDecisions bounds the anonymous memo (State.anon): one entry per
	// distinct request (repository and reference) anonymous callers make.
	maxAnonDecisions = 4096
)

type credEntry struct {
	id    *auth.Identity // ClientIP empty; shared, never modified
	until time.Time

	mu        sync.Mutex
	decisions map[decisionKey]policy.Decision
}

// decisionKey is everything a decision for this credential depends on besides
// the identity: the policies (an engine is immutable; a reload makes a new
// one), the client address and the request.
type decisionKey struct {
	engine *policy.Engine
	ip     string
	req    requestKey
}

type requestKey struct {
	action, operation, repository, reference, digest, from, artifactType, method string
	// tags joined with "\n", which the tag grammar excludes (one tag: no allocation)
	tags string
}

func keyOf(e *policy.Engine, ip string, r policy.Request) decisionKey {
	return decisionKey{engine: e, ip: ip, req: requestKey{r.Action, r.Operation, r.Repository, r.Reference,
		r.Digest, r.From, r.ArtifactType, r.Method, strings.Join(r.Tags, "\n")}}
}

// get returns the entry for header if it is still valid at now.
func (c *credCache) get(header string, now time.Time) *credEntry {
	c.mu.RLock()
	e := c.m[header]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.until) {
		return nil
	}
	return e
}

// put remembers id for header; id must not be modified afterwards.
func (c *credCache) put(header string, id *auth.Identity, now time.Time) *credEntry {
	if id.Expires.IsZero() || !now.Before(id.Expires) {
		return nil
	}
	tmpl := *id
	tmpl.ClientIP = ""
	e := &credEntry{id: &tmpl, until: id.Expires}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*credEntry)
	}
	if len(c.m) >= maxCredEntries {
		for k, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full: drop an arbitrary eighth
			if len(c.m) < maxCredEntries-maxCredEntries/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[header] = e
	return e
}

// identity is a copy of the remembered identity for one request. Its groups,
// claims and grants are shared with the cache and MUST NOT be modified.
func (e *credEntry) identity(ip string) *auth.Identity {
	id := *e.id
	id.ClientIP = ip
	return &id
}

func (e *credEntry) decision(k decisionKey) (policy.Decision, bool) {
	e.mu.Lock()
	d, ok := e.decisions[k]
	e.mu.Unlock()
	return d, ok
}

// remember keeps d for k; at limit entries the memo starts over.
func (e *credEntry) remember(k decisionKey, d policy.Decision, limit int) {
	e.mu.Lock()
	if e.decisions == nil || len(e.decisions) >= limit {
		e.decisions = make(map[decisionKey]policy.Decision)
	}
	e.decisions[k] = d
	e.mu.Unlock()
}
