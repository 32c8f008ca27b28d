package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dchan-io/dchan/channel"
	"github.com/dchan-io/dchan/channel/dchanprom"
)

// nodeView is one node in /debug/dchan.
type nodeView struct {
	Node    string           `json:"node"`
	Addr    string           `json:"addr"` // advertised
	State   string           `json:"state"`
	Leader  string           `json:"leader"`
	Members []channel.Member `json:"members"`
	Names   map[string]int   `json:"names"` // receivers per name
	Stats   channel.Stats    `json:"stats"`
}

// adminView is /debug/dchan's answer: every node this process runs.
type adminView struct {
	Nodes []nodeView `json:"nodes"`
}

// admin is the HTTP listener of -metrics: /metrics for Prometheus and
// /debug/dchan for people, separate from the nodes' own address.
type admin struct {
	srv  *http.Server
	lis  net.Listener
	done chan error
}

// startAdmin serves /metrics and /debug/dchan for nodes on addr. With more
// than one node (the local cluster) each node's series carry a node label.
func startAdmin(addr string, nodes []*channel.Node) (*admin, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, n := range nodes {
		r := prometheus.Registerer(reg)
		if len(nodes) > 1 {
			r = prometheus.WrapRegistererWith(prometheus.Labels{"node": n.ID()}, reg)
		}
		if err := r.Register(dchanprom.NewCollector(n)); err != nil {
			return nil, fmt.Errorf("metrics of %s: %w", n.ID(), err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/dchan", func(w http.ResponseWriter, _ *http.Request) {
		var v adminView
		for _, n := range nodes {
			v.Nodes = append(v.Nodes, viewOf(n))
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	})
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	a := &admin{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		lis:  lis,
		done: make(chan error, 1),
	}
	go func() { a.done <- a.srv.Serve(lis) }()
	return a, nil
}

func viewOf(n *channel.Node) nodeView {
	st := n.Stats()
	cl := n.Cluster()
	sort.Slice(cl.Members, func(i, j int) bool { return cl.Members[i].ID < cl.Members[j].ID })
	return nodeView{
		Node: n.ID(), Addr: n.AdvertiseAddr(), State: st.Registry.State, Leader: st.Registry.Leader,
		Members: cl.Members, Names: cl.Names, Stats: st,
	}
}

// Addr returns the address the admin listener is bound to.
func (a *admin) Addr() string { return a.lis.Addr().String() }

// Close stops serving, waiting up to 5 s for requests in progress.
func (a *admin) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if serr := <-a.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
