package registry

import (
	"fmt"
	"runtime"
	"testing"
)

// benchState returns a state with n names, each with one queue receiver on
// one of four nodes, and the names.
func benchState(b *testing.B, n int) (*State, []string) {
	b.Helper()
	s := applyAll(b, nil, join("n0", 1), join("n1", 1), join("n2", 1), join("n3", 1))
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("service.%d.requests", i)
		s = applyAll(b, s, register(names[i], queue(fmt.Sprintf("n%d", i%4), "$"+itoa(i), 1)))
	}
	return s, names
}

// BenchmarkLookup: State.Receivers on a hit, 10k names. Goal < 100 ns,
// 0 allocs.
func BenchmarkLookup(b *testing.B) {
	s, names := benchState(b, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if len(s.Receivers(names[i])) == 0 {
			b.Fatal("miss")
		}
		if i++; i == len(names) {
			i = 0
		}
	}
}

// BenchmarkLookupMiss: a name without receivers.
func BenchmarkLookupMiss(b *testing.B) {
	s, _ := benchState(b, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		if s.Receivers("no.such.name") != nil {
			b.Fatal("hit")
		}
	}
}

// BenchmarkLookupParallel: fsm.current().Receivers from all processors
// while nothing writes: no shared cache line is written by readers.
func BenchmarkLookupParallel(b *testing.B) {
	s, names := benchState(b, 10_000)
	f := newFSM()
	if err := restore(f, snapshotOf(b, s)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if len(f.current().Receivers(names[i])) == 0 {
				b.Error("miss")
				return
			}
			if i++; i == len(names) {
				i = 0
			}
		}
	})
}

// BenchmarkApplyRegister: State.Apply of a Register that adds a second
// receiver to an existing name, on tables of 10k and 100k names. Every
// iteration starts from the same base state (it is immutable), so the
// table does not grow during the run.
func BenchmarkApplyRegister(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			s, names := benchState(b, n)
			cmds := make([]command, len(names))
			for i, name := range names {
				cmds[i] = register(name, queue("n0", "extra", 1))
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, res := s.apply(s.Version()+1, cmds[i]); res.Err != nil {
					b.Fatal(res.Err)
				}
				if i++; i == len(cmds) {
					i = 0
				}
			}
		})
	}
}

// BenchmarkFSMApply: the full path of one committed entry: decode, apply,
// publish, signal (one watcher on another name), on 10k names.
func BenchmarkFSMApply(b *testing.B) {
	s, names := benchState(b, 10_000)
	f := newFSM()
	if err := restore(f, snapshotOf(b, s)); err != nil {
		b.Fatal(err)
	}
	_, cancel := f.watch("watched")
	defer cancel()
	// Alternate register/unregister so the state stays the same size.
	logs := make([][]byte, 2*len(names))
	for i, name := range names {
		logs[2*i] = logEntry(b, 0, register(name, queue("n1", "extra", 1))).Data
		logs[2*i+1] = logEntry(b, 0, unregisterCmd{Name: name, Node: "n1", ActorID: "extra"}).Data
	}
	index := s.Version()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		index++
		if res := f.Apply(raftLog{index, logs[i]}.log()).(result); res.Err != nil {
			b.Fatal(res.Err)
		}
		if i++; i == len(logs) {
			i = 0
		}
	}
}

// BenchmarkSnapshotRestore: Persist then Restore of 100k names.
func BenchmarkSnapshotRestore(b *testing.B) {
	s, _ := benchState(b, 100_000)
	data := snapshotOf(b, s)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f := newFSM()
		if err := restore(f, data); err != nil {
			b.Fatal(err)
		}
		_ = snapshot(b, f)
	}
}

// snapshotOf returns the snapshot bytes of s, by replaying its members
// and receivers into a new fsm (an fsm takes in a whole State only through
// Restore).
func snapshotOf(b *testing.B, s *State) []byte {
	b.Helper()
	f := newFSM()
	index := uint64(0)
	for _, m := range s.Members() {
		index++
		f.Apply(logEntry(b, index, joinCmd{Member: m}))
	}
	for _, name := range s.Names() {
		for _, r := range s.Receivers(name) {
			index++
			f.Apply(logEntry(b, index, register(name, r)))
		}
	}
	return snapshot(b, f)
}

// BenchmarkBytesPerName: the heap a replica holds per name, one queue
// receiver each, with 100k names registered one by one (as entries apply)
// and restored from a snapshot (as a joining replica gets them). Names
// are 20 bytes, actor IDs 4 to 5 (what actor.System.Spawn makes).
func BenchmarkBytesPerName(b *testing.B) {
	const n = 100_000
	members := applyAll(b, nil, join("n0", 1), join("n1", 1), join("n2", 1), join("n3", 1))
	cmds := make([][]byte, n)
	for i := range cmds {
		cmds[i] = logEntry(b, 0, register(fmt.Sprintf("service.%07d.reqs", i), queue(fmt.Sprintf("n%d", i%4), "$"+itoa(i), 1))).Data
	}
	b.Run("applied", func(b *testing.B) {
		for b.Loop() {
			before := heapInUse()
			f := newFSM()
			f.publish(members)
			for i, data := range cmds {
				f.Apply(raftLog{uint64(i + 10), data}.log())
			}
			b.ReportMetric(float64(heapInUse()-before)/n, "B/name")
			runtime.KeepAlive(f)
		}
	})
	f := newFSM()
	f.publish(members)
	for i, data := range cmds {
		f.Apply(raftLog{uint64(i + 10), data}.log())
	}
	snap := snapshotOf(b, f.current())
	b.Run("restored", func(b *testing.B) {
		for b.Loop() {
			before := heapInUse()
			g := newFSM()
			if err := restore(g, snap); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(heapInUse()-before)/n, "B/name")
			runtime.KeepAlive(g)
		}
	})
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
