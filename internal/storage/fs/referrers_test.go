package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSmallestNamesAfter: the referrers directory scan returns the n smallest
// entry names after the cursor, sorted, whatever the directory's size and
// order, skips dot files and names that are no referrer name, and reports
// whether more may follow; walking batch after batch visits every name once.
func TestSmallestNamesAfter(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 2500 {
		name := fmt.Sprintf("sha256-%064x", (i*7919)%2500) // not created in order
		want = append(want, name)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, junk := range []string{".tmp-sha256-0", "notareferrer"} {
		if err := os.WriteFile(filepath.Join(dir, junk), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	var got []string
	cursor, batches := "", 0
	for {
		names, full, err := smallestNamesAfter(dir, cursor, 300)
		if err != nil {
			t.Fatal(err)
		}
		batches++
		if len(names) > 300 || !slices.IsSorted(names) {
			t.Fatalf("batch %d: %d names, sorted %v", batches, len(names), slices.IsSorted(names))
		}
		got = append(got, names...)
		if !full {
			break
		}
		cursor = names[len(names)-1]
		if batches > 20 {
			t.Fatal("the batches do not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walked %d names, want %d (first %v)", len(got), len(want), got[:min(3, len(got))])
	}
	names, full, err := smallestNamesAfter(filepath.Join(dir, "missing"), "", 10)
	if err != nil || full || len(names) != 0 {
		t.Fatalf("missing directory: %v %v %v", names, full, err)
	}
}
