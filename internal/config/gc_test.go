package config

import (
	"reflect"
	"testing"
	"time"
)

func TestGCAndBlobRedirect(t *testing.T) {
	c, err := Parse([]byte(`[blob_store.s3]
bucket = "b"
enable_blob_redirect = true

[gc]
grace_period = "2h"
interval = "24h"
delete_untagged = true
`), "gc.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.BlobStore.S3.EnableBlobRedirect {
		t.Error("enable_blob_redirect not decoded")
	}
	if c.GC != (GC{GracePeriod: 2 * time.Hour, Interval: 24 * time.Hour, DeleteUntagged: true}) {
		t.Errorf("gc = %+v", c.GC)
	}
	_, err = Parse([]byte("[gc]\ngrace_period = \"-1h\"\ninterval = \"-5m\"\ndelete_untaged = true\n"), "bad.toml")
	got := problems(t, err)
	want := []Problem{
		{"gc.grace_period", 2, "must not be negative, got -1h0m0s"},
		{"gc.interval", 3, "must not be negative (0 turns the schedule off), got -5m0s"},
		{"gc.delete_untaged", 4, "unknown key (did you mean gc.delete_untagged?)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %+v\nwant %+v", got, want)
	}
}
