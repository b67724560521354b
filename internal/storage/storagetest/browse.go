package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// Contract tests of storage.Browser (the web UI's listings).

// plausible reports whether a backend timestamp is near now: backend clocks
// (an S3 server's) may differ a little from the test's, and S3 keeps seconds.
func plausible(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	const slack = 2 * time.Minute
	if got.IsZero() || got.Before(before.Add(-slack)) || got.After(after.Add(slack)) {
		t.Fatalf("%s = %s, want between %s and %s", what, got, before, after)
	}
}

func testBrowseTagInfo(t *testing.T, st storage.Store) {
	ctx := t.Context()
	_, err := st.ListTagInfo(ctx, "never/pushed", "", -1)
	wantErr(t, err, storage.ErrRepositoryUnknown, "ListTagInfo of never-pushed repository")

	before := time.Now()
	tags := []string{"v2", "latest", "v1", "1.0", "v1.10"}
	for i, tag := range tags {
		putManifest(t, st, "repo", newManifest(fmt.Sprint("tag", i)), tag)
	}
	after := time.Now()
	all := slices.Sorted(slices.Values(tags))
	names := func(in []storage.TagInfo) []string {
		var out []string
		for _, ti := range in {
			out = append(out, ti.Name)
		}
		return out
	}
	for _, tc := range []struct {
		after string
		n     int
		want  []string
	}{
		{"", -1, all},
		{"", 2, all[:2]},
		{"", 0, nil},
		{"latest", -1, all[2:]},
		{"m", 1, []string{"v1"}},
		{"v2", -1, nil},
	} {
		got, err := st.ListTagInfo(ctx, "repo", tc.after, tc.n)
		noErr(t, err, "ListTagInfo")
		equalStrings(t, fmt.Sprintf("ListTagInfo(after %q, n %d)", tc.after, tc.n), names(got), tc.want)
	}
	got, err := st.ListTagInfo(ctx, "repo", "", -1)
	noErr(t, err, "ListTagInfo")
	var latest time.Time
	for _, ti := range got {
		plausible(t, "ListTagInfo "+ti.Name+" time", ti.Updated, before, after)
		if ti.Name == "latest" {
			latest = ti.Updated
		}
	}
	// Moving a tag never makes it older.
	putManifest(t, st, "repo", newManifest("moved"), "latest")
	got, err = st.ListTagInfo(ctx, "repo", "kz", 1)
	noErr(t, err, "ListTagInfo after move")
	if len(got) != 1 || got[0].Name != "latest" || got[0].Updated.Before(latest) {
		t.Fatalf("ListTagInfo after moving latest = %+v, want latest no older than %s", got, latest)
	}
	// A repository with manifests but no tags lists none.
	putManifest(t, st, "untagged", newManifest("untagged"))
	got, err = st.ListTagInfo(ctx, "untagged", "", -1)
	noErr(t, err, "ListTagInfo untagged")
	if len(got) != 0 {
		t.Fatalf("ListTagInfo of an untagged repository = %+v", got)
	}
}

func testBrowseManifests(t *testing.T, st storage.Store) {
	ctx := t.Context()
	_, err := st.ListManifests(ctx, "never/pushed", "", -1)
	wantErr(t, err, storage.ErrRepositoryUnknown, "ListManifests of never-pushed repository")

	before := time.Now()
	var all []string
	for i := range 5 {
		m := newManifest(fmt.Sprint("m", i))
		if i%2 == 0 {
			putManifest(t, st, "repo", m, fmt.Sprint("t", i))
		} else {
			putManifest(t, st, "repo", m)
		}
		all = append(all, string(m.Digest))
	}
	// A sha512 manifest sorts after every sha256 one.
	data := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"name":"sha512"}}`)
	m512 := storage.Manifest{Digest: sha512Digest(data), MediaType: manifestType, Data: data}
	putManifest(t, st, "repo", m512)
	putManifest(t, st, "other", newManifest("elsewhere"))
	after := time.Now()
	slices.Sort(all)
	all = append(all, string(m512.Digest))

	digests := func(in []storage.ManifestInfo) []string {
		var out []string
		for _, mi := range in {
			out = append(out, string(mi.Digest))
		}
		return out
	}
	for _, tc := range []struct {
		after digest.Digest
		n     int
		want  []string
	}{
		{"", -1, all},
		{"", 3, all[:3]},
		{"", 0, nil},
		{digest.Digest(all[1]), 2, all[2:4]},
		{digest.Digest(all[4]), -1, all[5:]},
		{"sha256:", 1, all[:1]},
		{m512.Digest, -1, nil},
	} {
		got, err := st.ListManifests(ctx, "repo", tc.after, tc.n)
		noErr(t, err, "ListManifests")
		equalStrings(t, fmt.Sprintf("ListManifests(after %q, n %d)", tc.after, tc.n), digests(got), tc.want)
	}
	got, err := st.ListManifests(ctx, "repo", "", -1)
	noErr(t, err, "ListManifests")
	for _, mi := range got {
		plausible(t, "ListManifests "+string(mi.Digest)+" time", mi.Updated, before, after)
	}
	// Paging with n = 2 yields everything once.
	var paged []string
	for cursor := digest.Digest(""); ; {
		page, err := st.ListManifests(ctx, "repo", cursor, 2)
		noErr(t, err, "ListManifests page")
		if len(page) == 0 {
			break
		}
		paged = append(paged, digests(page)...)
		cursor = page[len(page)-1].Digest
	}
	equalStrings(t, "ListManifests paged", paged, all)

	noErr(t, st.DeleteManifest(ctx, "repo", digest.Digest(all[0])), "DeleteManifest")
	got, err = st.ListManifests(ctx, "repo", "", -1)
	noErr(t, err, "ListManifests after delete")
	equalStrings(t, "ListManifests after delete", digests(got), all[1:])
}

func testStatRepository(t *testing.T, st storage.Store) {
	ctx := t.Context()
	_, err := st.StatRepository(ctx, "never/pushed")
	wantErr(t, err, storage.ErrRepositoryUnknown, "StatRepository of never-pushed repository")

	before := time.Now()
	layer := content("browse-layer", 3000)
	config := content("browse-config", 200)
	uploadBlob(t, st, "app", layer)
	uploadBlob(t, st, "app", config)
	uploadBlob(t, st, "app", layer) // the same blob twice counts once
	uploadBlob(t, st, "app/nested", content("nested only", 5000))
	uploadBlob(t, st, "other", content("other only", 7000))
	m1, m2 := newManifest("app1"), newManifest("app2")
	putManifest(t, st, "app", m1, "v1", "latest")
	putManifest(t, st, "app", m2, "v2")
	after := time.Now()

	info, err := st.StatRepository(ctx, "app")
	noErr(t, err, "StatRepository")
	wantSize := int64(len(layer) + len(config) + len(m1.Data) + len(m2.Data))
	if info.Name != "app" || info.Tags != 3 || info.Manifests != 2 || info.Size != wantSize {
		t.Fatalf("StatRepository(app) = %+v, want 3 tags, 2 manifests, size %d", info, wantSize)
	}
	plausible(t, "StatRepository(app).Updated", info.Updated, before, after)

	info, err = st.StatRepository(ctx, "app/nested")
	noErr(t, err, "StatRepository nested")
	if info.Tags != 0 || info.Manifests != 0 || info.Size != 5000 || !info.Updated.IsZero() {
		t.Fatalf("StatRepository(app/nested) = %+v, want only its 5000-byte blob and no push time", info)
	}

	noErr(t, st.DeleteTag(ctx, "app", "latest"), "DeleteTag")
	info, err = st.StatRepository(ctx, "app")
	noErr(t, err, "StatRepository after DeleteTag")
	if info.Tags != 2 {
		t.Fatalf("StatRepository(app) after deleting a tag = %+v, want 2 tags", info)
	}
}
