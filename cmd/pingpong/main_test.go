package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLocalClusterJSONReport(t *testing.T) {
	var out bytes.Buffer
	err := runLocalCluster(context.Background(), options{duration: 500 * time.Millisecond, inflight: 8, asJSON: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report is not one JSON object: %v: %s", err, out.String())
	}
	if r.Messages == 0 || r.MsgsPerS <= 0 || r.RTTP50us <= 0 || r.RTTP99us < r.RTTP50us {
		t.Fatalf("implausible report: %+v", r)
	}
	if len(r.Members) != 3 {
		t.Fatalf("want 3 members, got %v", r.Members)
	}
}

func TestRejectsBadOptions(t *testing.T) {
	if err := runLocalCluster(context.Background(), options{duration: 0, inflight: 1}, &bytes.Buffer{}); err == nil {
		t.Fatal("a zero duration must be refused")
	}
	if err := runLocalCluster(context.Background(), options{duration: time.Second, inflight: 0}, &bytes.Buffer{}); err == nil {
		t.Fatal("zero pings in flight must be refused")
	}
}
