package regmodel

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func TestModelAcceptsAndRejects(t *testing.T) {
	const never = 1 << 40
	reg := func(m string) Input { return Input{Kind: Register, Name: "a", Member: m} }
	unreg := func(m string) Input { return Input{Kind: Unregister, Name: "a", Member: m} }
	read := Input{Kind: Read, Name: "a"}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"read sees a completed register", []porcupine.Operation{
			op(0, 0, 10, reg("n1/x"), Output{}),
			op(1, 20, 30, read, Output{Set: "n1/x"}),
		}, porcupine.Ok},
		{"read misses a completed register", []porcupine.Operation{
			op(0, 0, 10, reg("n1/x"), Output{}),
			op(1, 20, 30, read, Output{Set: ""}),
		}, porcupine.Illegal},
		{"a count read", []porcupine.Operation{
			op(0, 0, 10, reg("n1/x"), Output{}),
			op(0, 11, 12, reg("n2/y"), Output{}),
			op(1, 20, 30, read, Output{Counted: true, Count: 2}),
		}, porcupine.Ok},
		{"a wrong count", []porcupine.Operation{
			op(0, 0, 10, reg("n1/x"), Output{}),
			op(1, 20, 30, read, Output{Counted: true, Count: 2}),
		}, porcupine.Illegal},
		{"an overlapping register may or may not be seen", []porcupine.Operation{
			op(0, 0, 50, reg("n1/x"), Output{}),
			op(1, 10, 20, read, Output{Set: "n1/x"}),
			op(2, 10, 20, read, Output{Set: ""}),
		}, porcupine.Ok},
		{"a register seen, then not seen, without an unregister", []porcupine.Operation{
			op(0, 0, 50, reg("n1/x"), Output{}),
			op(1, 10, 20, read, Output{Set: "n1/x"}),
			op(2, 30, 40, read, Output{Set: ""}),
		}, porcupine.Illegal},
		{"an unknown register may take effect late", []porcupine.Operation{
			op(0, 0, never, reg("n1/x"), Output{Unknown: true}),
			op(1, 10, 20, read, Output{Set: ""}),
			op(2, 30, 40, read, Output{Set: "n1/x"}),
		}, porcupine.Ok},
		{"an unregister", []porcupine.Operation{
			op(0, 0, 5, reg("n1/x"), Output{}),
			op(0, 6, 8, unreg("n1/x"), Output{}),
			op(1, 10, 20, read, Output{Set: ""}),
		}, porcupine.Ok},
		{"an expiry removes the owner's receivers only", []porcupine.Operation{
			op(0, 0, 5, reg("n1.1/x"), Output{}),
			op(1, 0, 5, reg("n2.1/y"), Output{}),
			op(2, 6, never, Input{Kind: Expire, Name: "a", Member: "n1.1"}, Output{Unknown: true}),
			op(3, 10, 20, read, Output{Set: "n2.1/y"}),
		}, porcupine.Ok},
		{"an expiry does not remove another owner's", []porcupine.Operation{
			op(0, 0, 5, reg("n1.1/x"), Output{}),
			op(1, 0, 5, reg("n2.1/y"), Output{}),
			op(2, 6, never, Input{Kind: Expire, Name: "a", Member: "n1.1"}, Output{Unknown: true}),
			op(3, 10, 20, read, Output{Set: ""}),
		}, porcupine.Illegal},
		{"a restore brings back what an expiry hid", []porcupine.Operation{
			op(0, 0, 5, reg("n1.1/x"), Output{}),
			op(2, 6, never, Input{Kind: Expire, Name: "a", Member: "n1.1"}, Output{Unknown: true}),
			op(3, 10, 20, read, Output{Set: ""}),
			op(2, 25, never, Input{Kind: Restore, Name: "a", Member: "n1.1/x"}, Output{Unknown: true}),
			op(3, 30, 40, read, Output{Set: "n1.1/x"}),
		}, porcupine.Ok},
		{"restores come one by one", []porcupine.Operation{
			op(0, 0, 5, reg("n1.1/x"), Output{}),
			op(0, 0, 5, reg("n1.1/y"), Output{}),
			op(2, 6, 9, Input{Kind: Expire, Name: "a", Member: "n1.1"}, Output{Unknown: true}),
			op(3, 10, 20, read, Output{Set: ""}),
			op(2, 25, 50, Input{Kind: Restore, Name: "a", Member: "n1.1/x"}, Output{Unknown: true}),
			op(4, 25, 50, Input{Kind: Restore, Name: "a", Member: "n1.1/y"}, Output{Unknown: true}),
			op(3, 30, 40, read, Output{Set: "n1.1/y"}),
			op(3, 60, 70, read, Output{Set: "n1.1/x,n1.1/y"}),
		}, porcupine.Ok},
		{"a restore does not bring back what was unregistered while hidden", []porcupine.Operation{
			op(0, 0, 5, reg("n1.1/x"), Output{}),
			op(2, 6, never, Input{Kind: Expire, Name: "a", Member: "n1.1"}, Output{Unknown: true}),
			op(3, 10, 20, read, Output{Set: ""}),
			op(0, 21, 22, unreg("n1.1/x"), Output{}),
			op(2, 25, never, Input{Kind: Restore, Name: "a", Member: "n1.1/x"}, Output{Unknown: true}),
			op(3, 30, 40, read, Output{Set: "n1.1/x"}),
		}, porcupine.Illegal},
		{"a certain expiry must happen within its window", []porcupine.Operation{
			op(0, 0, 5, reg("n1.1/x"), Output{}),
			op(2, 6, 9, Input{Kind: Expire, Name: "a", Member: "n1.1"}, Output{}),
			op(3, 10, 20, read, Output{Set: "n1.1/x"}),
		}, porcupine.Illegal},
		{"names are independent", []porcupine.Operation{
			op(0, 0, 5, reg("n1/x"), Output{}),
			op(1, 10, 20, Input{Kind: Read, Name: "b"}, Output{Set: ""}),
		}, porcupine.Ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(Model.ToModel(), tc.history); got != (tc.want == porcupine.Ok) {
				t.Fatalf("check = %v, want %v", got, tc.want)
			}
		})
	}
	if got := SetOf([]string{"b", "a"}); got != "a,b" {
		t.Fatalf("SetOf = %q", got)
	}
}
