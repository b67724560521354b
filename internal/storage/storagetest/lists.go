package storagetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
)

func testListTags(t *testing.T, st storage.Store) {
	ctx := t.Context()
	all := []string{"1.0", "Latest", "_private", "latest", "v1", "v1.10", "v1.2", "v1.2-rc1", "v2"}
	shuffled := []string{"v1.2", "latest", "_private", "v2", "Latest", "v1", "1.0", "v1.10", "v1.2-rc1"}
	for i, tag := range shuffled {
		putManifest(t, st, "repo", newManifest(fmt.Sprint("tag", i)), tag)
	}
	for _, tc := range []struct {
		after string
		n     int
		want  []string
	}{
		{"", -1, all},
		{"", 100, all},
		{"", 0, nil},
		{"", 3, all[:3]},
		{"_private", 2, []string{"latest", "v1"}},
		{"v1", -1, all[5:]},
		{"v1.2", 1, []string{"v1.2-rc1"}},
		{"m", 2, []string{"v1", "v1.10"}}, // after need not be a tag
		{"v2", -1, nil},
		{"zzz", 5, nil},
	} {
		got, err := st.ListTags(ctx, "repo", tc.after, tc.n)
		noErr(t, err, "ListTags")
		equalStrings(t, fmt.Sprintf("ListTags(after %q, n %d)", tc.after, tc.n), got, tc.want)
	}
	// Paging through with n = 2 yields everything once.
	var paged []string
	for after := ""; ; {
		page, err := st.ListTags(ctx, "repo", after, 2)
		noErr(t, err, "ListTags page")
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("ListTags page of %d with n = 2", len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	equalStrings(t, "ListTags paged", paged, all)
}

func testListTagsUnknown(t *testing.T, st storage.Store) {
	ctx := t.Context()
	_, err := st.ListTags(ctx, "never/pushed", "", -1)
	wantErr(t, err, storage.ErrRepositoryUnknown, "ListTags of never-pushed repository")
	putManifest(t, st, "untagged", newManifest("untagged"))
	tags, err := st.ListTags(ctx, "untagged", "", -1)
	noErr(t, err, "ListTags of a repository without tags")
	equalStrings(t, "ListTags of a repository without tags", tags, nil)
	uploadBlob(t, st, "blobsonly", []byte("layer"))
	tags, err = st.ListTags(ctx, "blobsonly", "", -1)
	noErr(t, err, "ListTags of a repository with blobs only")
	equalStrings(t, "ListTags of a repository with blobs only", tags, nil)
	// A parent of a repository is not a repository.
	putManifest(t, st, "deep/nested/repo", newManifest("deep"), "latest")
	_, err = st.ListTags(ctx, "deep/nested", "", -1)
	wantErr(t, err, storage.ErrRepositoryUnknown, "ListTags of a parent path")
}

func testListRepositories(t *testing.T, st storage.Store) {
	ctx := t.Context()
	repos, err := st.ListRepositories(ctx, "", -1)
	noErr(t, err, "ListRepositories of empty store")
	equalStrings(t, "ListRepositories of empty store", repos, nil)

	// Pushed in a scrambled order; some with manifests, some with blobs only.
	names := []string{"b", "a/b/c", "a-b", "a", "library/ubuntu", "a/b", "a.b", "a_b", "z/y/x/w", "ab", "a/c"}
	for i, name := range names {
		if i%2 == 0 {
			putManifest(t, st, name, newManifest(name), "latest")
		} else {
			uploadBlob(t, st, name, []byte(name))
		}
	}
	want := slices.Clone(names)
	slices.Sort(want) // byte order: "a" < "a-b" < "a.b" < "a/b" < "a/b/c" < "a/c" < "a_b" < "ab" < ...

	for _, tc := range []struct {
		after string
		n     int
		want  []string
	}{
		{"", -1, want},
		{"", 1000, want},
		{"", 0, nil},
		{"", 4, want[:4]},
		{"a", 3, want[1:4]},
		{"a/b", -1, want[4:]},
		{"a/b/c", 2, want[5:7]},
		{"a/a", 1, []string{"a/b"}}, // after need not be a repository
		{"z/y/x/w", -1, nil},
	} {
		got, err := st.ListRepositories(ctx, tc.after, tc.n)
		noErr(t, err, "ListRepositories")
		equalStrings(t, fmt.Sprintf("ListRepositories(after %q, n %d)", tc.after, tc.n), got, tc.want)
	}
	var paged []string
	for after := ""; ; {
		page, err := st.ListRepositories(ctx, after, 3)
		noErr(t, err, "ListRepositories page")
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("ListRepositories page of %d with n = 3", len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	equalStrings(t, "ListRepositories paged", paged, want)
	// One name after any point, repository or not: the next name in byte order.
	for _, after := range append(slices.Clone(want), "a-", "a/", "a/b/", "a/b0", "aa", "library/", "y", "zz") {
		i, _ := slices.BinarySearch(want, after)
		if i < len(want) && want[i] == after {
			i++
		}
		got, err := st.ListRepositories(ctx, after, 1)
		noErr(t, err, "ListRepositories")
		equalStrings(t, fmt.Sprintf("ListRepositories(after %q, n 1)", after), got, want[i:min(i+1, len(want))])
	}
}
