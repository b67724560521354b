package storagetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

func testManifest(t *testing.T, st storage.Store) {
	ctx := t.Context()
	m := newManifest("plain")
	manifestUnknown(t, st, "repo", m.Digest)
	putManifest(t, st, "repo", m)
	checkManifest(t, st, "repo", m)
	manifestUnknown(t, st, "other", m.Digest)
	// Putting it again is fine, and may change the media type.
	m2 := m
	m2.MediaType = "application/vnd.docker.distribution.manifest.v2+json"
	putManifest(t, st, "repo", m2)
	checkManifest(t, st, "repo", m2)
	// An index in the same repository.
	idx := storage.Manifest{MediaType: "application/vnd.oci.image.index.v1+json"}
	idx.Data = fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`, manifestType, m.Digest, len(m.Data))
	idx.Digest = sha256Digest(idx.Data)
	noErr(t, st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: idx}), "PutManifest index")
	checkManifest(t, st, "repo", idx)
	checkManifest(t, st, "repo", m2)
}

func testManifestSHA512(t *testing.T, st storage.Store) {
	m := newManifest("sha512")
	m.Digest = sha512Digest(m.Data)
	putManifest(t, st, "repo", m, "v512")
	checkManifest(t, st, "repo", m)
	resolve(t, st, "repo", "v512", m.Digest)
}

func testManifestDigestMismatch(t *testing.T, st storage.Store) {
	ctx := t.Context()
	m := newManifest("liar")
	m.Digest = sha256Digest([]byte("not these bytes"))
	err := st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: m, Tags: []string{"latest"}})
	wantErr(t, err, storage.ErrDigestMismatch, "PutManifest with wrong digest")
	manifestUnknown(t, st, "repo", m.Digest)
	tagUnknown(t, st, "repo", "latest")
}

func testManifestTags(t *testing.T, st storage.Store) {
	m1 := newManifest("one")
	m2 := newManifest("two")
	tagUnknown(t, st, "repo", "latest")
	putManifest(t, st, "repo", m1, "latest", "v1", "V1.0_rc-1")
	resolve(t, st, "repo", "latest", m1.Digest)
	resolve(t, st, "repo", "v1", m1.Digest)
	resolve(t, st, "repo", "V1.0_rc-1", m1.Digest)
	tagUnknown(t, st, "repo", "v2")
	tagUnknown(t, st, "other", "latest")
	// Moving a tag.
	putManifest(t, st, "repo", m2, "latest", "v2")
	resolve(t, st, "repo", "latest", m2.Digest)
	resolve(t, st, "repo", "v1", m1.Digest)
	resolve(t, st, "repo", "v2", m2.Digest)
	checkManifest(t, st, "repo", m1)
	checkManifest(t, st, "repo", m2)
}

func testReferrers(t *testing.T, st storage.Store) {
	ctx := t.Context()
	subject := newManifest("subject")
	putManifest(t, st, "repo", subject, "latest")
	refs, err := st.ListReferrers(ctx, "repo", subject.Digest)
	noErr(t, err, "ListReferrers with none")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers with none = %+v", refs)
	}

	r1, d1 := referrer("sbom", "application/spdx+json", subject)
	r2, d2 := referrer("signature", "application/vnd.dev.cosign.artifact.sig.v1+json", subject)
	r2.Tags = []string{"sha256-sig"}
	noErr(t, st.PutManifest(ctx, "repo", r1), "PutManifest referrer 1")
	noErr(t, st.PutManifest(ctx, "repo", r2), "PutManifest referrer 2")
	checkManifest(t, st, "repo", r1.Manifest)
	resolve(t, st, "repo", "sha256-sig", r2.Manifest.Digest)

	refs, err = st.ListReferrers(ctx, "repo", subject.Digest)
	noErr(t, err, "ListReferrers")
	got := descriptorsByDigest(refs)
	if len(refs) != 2 || !sameDescriptor(got[d1.Digest], d1) || !sameDescriptor(got[d2.Digest], d2) {
		t.Fatalf("ListReferrers = %+v, want %+v and %+v", refs, d1, d2)
	}
	// Referrers are per repository, and per subject.
	refs, err = st.ListReferrers(ctx, "other", subject.Digest)
	noErr(t, err, "ListReferrers in another repository")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers in another repository = %+v", refs)
	}
	refs, err = st.ListReferrers(ctx, "repo", r1.Manifest.Digest)
	noErr(t, err, "ListReferrers of a referrer")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers of a referrer = %+v", refs)
	}
	// A subject need not exist (yet).
	ghost := newManifest("ghost")
	r3, d3 := referrer("early", "application/example", ghost)
	noErr(t, st.PutManifest(ctx, "repo", r3), "PutManifest referrer of missing subject")
	refs, err = st.ListReferrers(ctx, "repo", ghost.Digest)
	noErr(t, err, "ListReferrers of missing subject")
	if len(refs) != 1 || !sameDescriptor(refs[0], d3) {
		t.Fatalf("ListReferrers of missing subject = %+v", refs)
	}
}

func testDeleteManifest(t *testing.T, st storage.Store) {
	ctx := t.Context()
	subject := newManifest("subject")
	other := newManifest("other")
	putManifest(t, st, "repo", subject, "latest")
	putManifest(t, st, "repo", other, "keep")
	req, _ := referrer("sig", "application/example", subject)
	req.Tags = []string{"sig", "sig2"}
	noErr(t, st.PutManifest(ctx, "repo", req), "PutManifest referrer")
	putManifest(t, st, "mirror", req.Manifest, "sig")

	noErr(t, st.DeleteManifest(ctx, "repo", req.Manifest.Digest), "DeleteManifest")
	manifestUnknown(t, st, "repo", req.Manifest.Digest)
	tagUnknown(t, st, "repo", "sig")
	tagUnknown(t, st, "repo", "sig2")
	resolve(t, st, "repo", "latest", subject.Digest)
	resolve(t, st, "repo", "keep", other.Digest)
	refs, err := st.ListReferrers(ctx, "repo", subject.Digest)
	noErr(t, err, "ListReferrers after delete")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers after delete = %+v", refs)
	}
	tags, err := st.ListTags(ctx, "repo", "", -1)
	noErr(t, err, "ListTags")
	equalStrings(t, "ListTags after delete", tags, []string{"keep", "latest"})
	// Other repositories keep their copy.
	checkManifest(t, st, "mirror", req.Manifest)
	resolve(t, st, "mirror", "sig", req.Manifest.Digest)

	wantErr(t, st.DeleteManifest(ctx, "repo", req.Manifest.Digest), storage.ErrManifestUnknown, "DeleteManifest twice")
	wantErr(t, st.DeleteManifest(ctx, "nowhere", subject.Digest), storage.ErrManifestUnknown, "DeleteManifest in another repository")

	noErr(t, st.DeleteManifest(ctx, "repo", subject.Digest), "DeleteManifest of subject")
	tagUnknown(t, st, "repo", "latest")
	manifestUnknown(t, st, "repo", subject.Digest)
	checkManifest(t, st, "repo", other)

	// Pushing it again brings it back.
	putManifest(t, st, "repo", subject, "latest")
	resolve(t, st, "repo", "latest", subject.Digest)
}

func testDeleteTag(t *testing.T, st storage.Store) {
	ctx := t.Context()
	m := newManifest("m")
	putManifest(t, st, "repo", m, "a", "b")
	noErr(t, st.DeleteTag(ctx, "repo", "a"), "DeleteTag")
	tagUnknown(t, st, "repo", "a")
	resolve(t, st, "repo", "b", m.Digest)
	checkManifest(t, st, "repo", m)
	wantErr(t, st.DeleteTag(ctx, "repo", "a"), storage.ErrTagUnknown, "DeleteTag twice")
	wantErr(t, st.DeleteTag(ctx, "repo", "never"), storage.ErrTagUnknown, "DeleteTag unknown")
	wantErr(t, st.DeleteTag(ctx, "other", "b"), storage.ErrTagUnknown, "DeleteTag in another repository")
	noErr(t, st.DeleteTag(ctx, "repo", "b"), "DeleteTag last")
	checkManifest(t, st, "repo", m)
	tags, err := st.ListTags(ctx, "repo", "", -1)
	noErr(t, err, "ListTags with no tags left")
	equalStrings(t, "ListTags with no tags left", tags, nil)
}

func testConcurrentTag(t *testing.T, st storage.Store) {
	ctx := t.Context()
	const workers = 12
	manifests := make(map[digest.Digest]storage.Manifest, workers)
	var list []storage.Manifest
	for i := range workers {
		m := newManifest(fmt.Sprint("racer", i))
		manifests[m.Digest] = m
		list = append(list, m)
	}

	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			d, err := st.ResolveTag(ctx, "repo", "latest")
			if errors.Is(err, storage.ErrTagUnknown) {
				continue // not pushed yet
			}
			if err != nil {
				readerErr <- fmt.Errorf("ResolveTag during pushes: %w", err)
				return
			}
			if _, ok := manifests[d]; !ok {
				readerErr <- fmt.Errorf("tag points at %s, which nobody pushed", d)
				return
			}
			if _, err := st.GetManifest(ctx, "repo", d); err != nil {
				readerErr <- fmt.Errorf("tag points at %s, which is not there: %w", d, err)
				return
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i, m := range list {
		wg.Go(func() {
			for range 3 {
				if err := st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: m, Tags: []string{"latest"}}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		noErr(t, err, fmt.Sprintf("PutManifest worker %d", i))
	}
	d, err := st.ResolveTag(ctx, "repo", "latest")
	noErr(t, err, "ResolveTag after the race")
	m, ok := manifests[d]
	if !ok {
		t.Fatalf("tag points at %s, which nobody pushed", d)
	}
	checkManifest(t, st, "repo", m)
	for _, m := range list {
		checkManifest(t, st, "repo", m)
	}
}

// testWalkReferrers: WalkReferrers hands out every referrer once, in digest
// order, from any cursor (present or not), and stops when fn says so; the
// descriptor bytes are the stored Descriptor JSON; a missing subject or
// repository has none; fn's error comes back as is.
func testWalkReferrers(t *testing.T, st storage.Store) {
	ctx := t.Context()
	subject := newManifest("walk-subject")
	putManifest(t, st, "repo", subject, "latest")
	want := map[digest.Digest]storage.Descriptor{}
	var order []digest.Digest
	for i := range 12 {
		r, d := referrer(fmt.Sprint("walk-", i), "application/example", subject)
		noErr(t, st.PutManifest(ctx, "repo", r), "PutManifest referrer")
		want[d.Digest] = d
		order = append(order, d.Digest)
	}
	slices.Sort(order)
	walk := func(after digest.Digest, limit int) []digest.Digest {
		t.Helper()
		var got []digest.Digest
		err := st.WalkReferrers(ctx, "repo", subject.Digest, after, func(ref digest.Digest, b []byte) (bool, error) {
			var desc storage.Descriptor
			if err := json.Unmarshal(b, &desc); err != nil {
				t.Fatalf("WalkReferrers: descriptor of %s: %v: %s", ref, err, b)
			}
			if desc.Digest != ref || !sameDescriptor(desc, want[ref]) {
				t.Fatalf("WalkReferrers: %s has %+v, want %+v", ref, desc, want[ref])
			}
			got = append(got, ref)
			return limit < 0 || len(got) < limit, nil
		})
		noErr(t, err, "WalkReferrers")
		return got
	}
	if got := walk("", -1); !slices.Equal(got, order) {
		t.Fatalf("WalkReferrers = %v, want %v", got, order)
	}
	if got := walk("", 3); !slices.Equal(got, order[:3]) {
		t.Fatalf("WalkReferrers stopping after 3 = %v, want %v", got, order[:3])
	}
	if got := walk(order[4], -1); !slices.Equal(got, order[5:]) {
		t.Fatalf("WalkReferrers after %s = %v, want %v", order[4], got, order[5:])
	}
	if got := walk(order[len(order)-1], -1); len(got) != 0 {
		t.Fatalf("WalkReferrers after the last = %v", got)
	}
	// A cursor that is no referrer: the ones sorting after it.
	cursor := digest.Digest(string(order[6])[:len(order[6])-1] + "0")
	if cursor == order[6] {
		cursor = digest.Digest(string(order[6])[:len(order[6])-1] + "1")
	}
	var after []digest.Digest
	for _, d := range order {
		if d > cursor {
			after = append(after, d)
		}
	}
	if got := walk(cursor, -1); !slices.Equal(got, after) {
		t.Fatalf("WalkReferrers after %s = %v, want %v", cursor, got, after)
	}
	for _, c := range []struct{ repo, subject string }{{"repo", "ghost"}, {"never-pushed", "walk-subject"}} {
		err := st.WalkReferrers(ctx, c.repo, newManifest(c.subject).Digest, "", func(digest.Digest, []byte) (bool, error) {
			t.Fatalf("WalkReferrers of %s in %s calls fn", c.subject, c.repo)
			return false, nil
		})
		noErr(t, err, "WalkReferrers of a missing subject")
	}
	boom := errors.New("boom")
	err := st.WalkReferrers(ctx, "repo", subject.Digest, "", func(digest.Digest, []byte) (bool, error) { return true, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("WalkReferrers returned %v, want fn's error", err)
	}
}
