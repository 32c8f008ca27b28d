package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunJSONReport(t *testing.T) {
	var out bytes.Buffer
	if err := run(200*time.Millisecond, true, &out); err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report is not one JSON object: %v: %s", err, out.String())
	}
	if r.Messages == 0 || r.MsgsPerS <= 0 || r.RTTP50us <= 0 || r.RTTP99us < r.RTTP50us {
		t.Fatalf("implausible report: %+v", r)
	}
}

func TestRunRejectsBadDuration(t *testing.T) {
	if err := run(0, true, &bytes.Buffer{}); err == nil {
		t.Fatal("a zero duration must be refused")
	}
}
