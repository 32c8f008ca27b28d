package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	env := func(k string) string {
		if k == "DCHAN_TOKEN" {
			return "from-env"
		}
		return ""
	}
	for _, tc := range []struct {
		args     []string
		nodeMode bool
		check    func(t *testing.T, o options)
	}{
		{nil, false, func(t *testing.T, o options) {
			assert.Equal(t, 3*time.Second, o.duration)
			assert.Equal(t, "from-env", o.token, "the token comes from DCHAN_TOKEN")
			assert.Equal(t, 60*time.Second, o.joinTimeout)
		}},
		{[]string{"-d", "10s", "-json"}, false, nil},
		{[]string{"-listen", "0.0.0.0:7001"}, true, nil},
		{[]string{"-join", " a:1, dchan.svc:7001 ,,", "-token", "t"}, true, func(t *testing.T, o options) {
			assert.Equal(t, []string{"a:1", "dchan.svc:7001"}, o.join)
			assert.Equal(t, "t", o.token, "-token wins over the environment")
		}},
		{[]string{"-bootstrap-expect", "3", "-d", "0"}, true, func(t *testing.T, o options) {
			assert.Equal(t, 3, o.bootstrapExpect)
			assert.Zero(t, o.duration)
		}},
		{[]string{"-id", "n1"}, true, nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("pingpong", flag.ContinueOnError)
			o, nodeMode, err := parseFlags(fs, tc.args, env)
			require.NoError(t, err)
			assert.Equal(t, tc.nodeMode, nodeMode)
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
	fs := flag.NewFlagSet("pingpong", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, _, err := parseFlags(fs, []string{"-nope"}, env)
	assert.Error(t, err)
}

func TestNodeModeValidates(t *testing.T) {
	for _, o := range []options{
		{duration: -1, inflight: 1, joinTimeout: time.Second},
		{duration: time.Second, inflight: 1, joinTimeout: 0},
		{duration: time.Second, inflight: 1, joinTimeout: time.Second, tlsCert: "c.pem"},
	} {
		assert.Error(t, runNode(context.Background(), o, io.Discard, io.Discard), "%+v", o)
	}
}

// TestJoinTimeoutNamesTheAddress: a node told to join an address where
// nothing listens gives up after -join-timeout with an error that names
// the address and why it failed.
func TestJoinTimeoutNamesTheAddress(t *testing.T) {
	dead := freeAddr(t)
	o := options{duration: time.Second, inflight: 1, joinTimeout: time.Second, id: "n2", listen: "127.0.0.1:0", join: []string{dead}}
	start := time.Now()
	err := runNode(context.Background(), o, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Contains(t, err.Error(), dead)
	assert.Contains(t, err.Error(), "connection refused")
}

// TestNodesFormAClusterWithBootstrapExpect runs three nodes as an operator
// would (the same -join list, -bootstrap-expect 3, -d 0), stopped together
// after two seconds as by a signal; each report lists the three members at
// their addresses.
func TestNodesFormAClusterWithBootstrapExpect(t *testing.T) {
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 3)
	errs := make([]error, 3)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 3 {
		o := options{inflight: 4, asJSON: true, joinTimeout: 20 * time.Second,
			id: fmt.Sprintf("n%d", i+1), listen: addrs[i], join: addrs, bootstrapExpect: 3, token: "t0ken"}
		wg.Go(func() { errs[i] = runNode(ctx, o, &outs[i], io.Discard) })
	}
	time.AfterFunc(3*time.Second, cancel)
	wg.Wait()
	for i := range 3 {
		require.NoError(t, errs[i], "node n%d", i+1)
		var r report
		require.NoError(t, json.Unmarshal(outs[i].Bytes(), &r), "n%d: %s", i+1, outs[i].String())
		assert.Positive(t, r.Messages, "n%d played", i+1)
		require.Len(t, r.Members, 3, "n%d: %v", i+1, r.Members)
		for j, a := range addrs {
			assert.Contains(t, r.Members, fmt.Sprintf("n%d@%s (voter)", j+1, a))
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
