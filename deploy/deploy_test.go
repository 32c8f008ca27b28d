package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// The files these tests read, relative to the module root.
const (
	kubernetesDir = "deploy/kubernetes"
	systemdDir    = "deploy/systemd"
	dockerfile    = "Dockerfile"
	deployDoc     = "docs/deploy.md"
)

// use is one flag passed to pingpong somewhere in the deployment files.
type use struct {
	flag  string // the name, without dashes or value
	where string // file:line, relative to the module root
}

// TestManifestsParse checks that every YAML document under deploy/kubernetes
// parses and names what Kubernetes (or kustomize) needs to accept it.
func TestManifestsParse(t *testing.T) {
	root := moduleRoot(t)
	files, err := yamlFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.yaml in %s", kubernetesDir)
	}
	for _, f := range files {
		docs, err := readYAML(root, f)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
		for _, d := range docs {
			for _, key := range [][]string{{"apiVersion"}, {"kind"}, {"metadata", "name"}} {
				if scalar(dig(d.root, key...)) == "" {
					t.Errorf("%s:%d: document has no %s", d.file, d.root.Line, strings.Join(key, "."))
				}
			}
		}
	}
}

// TestKustomizationListsEveryManifest checks that `kubectl apply -k` applies
// exactly the manifests in the directory: a file left out would silently not
// be deployed, a stale entry would fail the apply.
func TestKustomizationListsEveryManifest(t *testing.T) {
	root := moduleRoot(t)
	files, err := yamlFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	const kfile = kubernetesDir + "/kustomization.yaml"
	docs, err := readYAML(root, kfile)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || scalar(dig(docs[0].root, "kind")) != "Kustomization" {
		t.Fatalf("%s: want one document of kind Kustomization", kfile)
	}
	listed := map[string]bool{}
	for _, r := range items(dig(docs[0].root, "resources")) {
		listed[path.Join(kubernetesDir, scalar(r))] = true
	}
	for _, f := range files {
		if f != kfile && !listed[f] {
			t.Errorf("%s is not among the resources of %s", f, kfile)
		}
		delete(listed, f)
	}
	for f := range listed {
		t.Errorf("%s lists %s, which does not exist", kfile, f)
	}
}

// TestStatefulSet checks that the StatefulSet, the Service and the Secret
// agree with each other and with the flags the node runs with: a probe on
// the wrong port, a -join name that is not the Service's, an unset $(VAR)
// (Kubernetes leaves it in the argument as is) all deploy without error and
// fail only at run time.
func TestStatefulSet(t *testing.T) {
	root := moduleRoot(t)
	docs, err := kubernetesDocs(root)
	if err != nil {
		t.Fatal(err)
	}
	sets := ofKind(docs, "StatefulSet")
	if len(sets) != 1 {
		t.Fatalf("want one StatefulSet under %s, found %d", kubernetesDir, len(sets))
	}
	ss := sets[0]
	where := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d", ss.file, n.Line) }
	spec := dig(ss.root, "spec")
	pod := dig(spec, "template", "spec")
	var cs []*yaml.Node
	for _, c := range items(dig(pod, "containers")) {
		if runsPingpong(c) {
			cs = append(cs, c)
		}
	}
	if len(cs) != 1 {
		t.Fatalf("%s: want one container running pingpong, found %d", ss.file, len(cs))
	}
	c := cs[0]
	args := containerArgs(c)
	vals := flagValues(scalars(args))

	listen := vals["listen"]
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("%s: -listen %q: %v", ss.file, listen, err)
	}
	portByName := map[string]string{}
	hasPort := false
	for _, p := range items(dig(c, "ports")) {
		n := scalar(dig(p, "containerPort"))
		portByName[scalar(dig(p, "name"))] = n
		hasPort = hasPort || n == port
	}
	if !hasPort {
		t.Errorf("%s: no containerPort %s, the port of -listen", where(c), port)
	}
	// resolve maps a probe's or Service's port, a number or a container
	// port's name, to a number.
	resolve := func(n *yaml.Node) string {
		if v, ok := portByName[scalar(n)]; ok {
			return v
		}
		return scalar(n)
	}

	for _, name := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
		probe := dig(c, name)
		if probe == nil {
			if name != "startupProbe" {
				t.Errorf("%s: container has no %s", where(c), name)
			}
			continue
		}
		var p *yaml.Node
		switch {
		case dig(probe, "grpc") != nil:
			p = dig(probe, "grpc", "port")
		case dig(probe, "tcpSocket") != nil:
			p = dig(probe, "tcpSocket", "port")
		default:
			t.Errorf("%s: %s is neither grpc nor tcpSocket: only the gRPC health service listens", where(probe), name)
			continue
		}
		if got := resolve(p); got != port {
			t.Errorf("%s: %s asks port %s, but the node listens on %s (-listen %s)", where(probe), name, got, port, listen)
		}
	}

	if adv := vals["advertise"]; adv != "" {
		if _, p, err := net.SplitHostPort(adv); err != nil || p != port {
			t.Errorf("%s: -advertise %q: peers would dial a port other than -listen's %s", ss.file, adv, port)
		}
	}

	// Peers find each other through the headless Service the set names.
	svcName := scalar(dig(spec, "serviceName"))
	var svc *yaml.Node
	for _, d := range ofKind(docs, "Service") {
		if scalar(dig(d.root, "metadata", "name")) == svcName {
			svc = d.root
		}
	}
	if svc == nil {
		t.Fatalf("%s: serviceName %q names no Service under %s", ss.file, svcName, kubernetesDir)
	}
	if got := scalar(dig(svc, "spec", "clusterIP")); got != "None" {
		t.Errorf("Service %s: clusterIP %q, want None (headless: DNS must return every pod)", svcName, got)
	}
	if got := scalar(dig(svc, "spec", "publishNotReadyAddresses")); got != "true" {
		t.Errorf("Service %s: publishNotReadyAddresses is not true: pods could not find each other before they are ready", svcName)
	}
	labels := dig(ss.root, "spec", "template", "metadata", "labels")
	for k, v := range stringMap(dig(svc, "spec", "selector")) {
		if scalar(dig(labels, k)) != v {
			t.Errorf("Service %s selects %s=%s, which the pod template's labels do not carry", svcName, k, v)
		}
	}
	svcPortOK := false
	for _, p := range items(dig(svc, "spec", "ports")) {
		target := dig(p, "targetPort")
		if target == nil {
			target = dig(p, "port")
		}
		svcPortOK = svcPortOK || resolve(target) == port
	}
	if !svcPortOK {
		t.Errorf("Service %s has no port whose target is %s, the port of -listen", svcName, port)
	}
	join := vals["join"]
	if join == "" {
		t.Errorf("%s: no -join", ss.file)
	}
	for _, a := range strings.Split(join, ",") {
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Errorf("%s: -join address %q: %v", ss.file, a, err)
			continue
		}
		// A headless name resolves to the pods themselves, so the port is
		// the pods' own, not a Service port mapped onto it.
		if p != port {
			t.Errorf("%s: -join address %q: port %s, but the nodes listen on %s", ss.file, a, p, port)
		}
		if first, _, _ := strings.Cut(host, "."); first != svcName {
			t.Errorf("%s: -join address %q is not the Service %s", ss.file, a, svcName)
		}
	}

	env := map[string]*yaml.Node{}
	for _, e := range items(dig(c, "env")) {
		env[scalar(dig(e, "name"))] = e
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, a := range args {
		for _, m := range ref.FindAllStringSubmatch(a.Value, -1) {
			if env[m[1]] == nil {
				t.Errorf("%s: %s refers to $(%s), which the container's env does not define", where(a), a.Value, m[1])
			}
		}
	}
	for name, e := range env {
		sk := dig(e, "valueFrom", "secretKeyRef")
		if sk == nil {
			continue
		}
		secret, key := scalar(dig(sk, "name")), scalar(dig(sk, "key"))
		found := false
		for _, d := range ofKind(docs, "Secret") {
			if scalar(dig(d.root, "metadata", "name")) == secret {
				found = dig(d.root, "stringData", key) != nil || dig(d.root, "data", key) != nil
			}
		}
		if !found {
			t.Errorf("%s: env %s reads key %q of Secret %q, which no Secret under %s has", where(e), name, key, secret, kubernetesDir)
		}
	}

	if be := vals["bootstrap-expect"]; be != "" {
		if got := scalar(dig(spec, "replicas")); got != be {
			t.Errorf("%s: replicas %s but -bootstrap-expect %s: the first bootstrap would wait for nodes that never start", ss.file, got, be)
		}
		if n, _ := strconv.Atoi(be); n > 1 && scalar(dig(spec, "podManagementPolicy")) != "Parallel" {
			t.Errorf("%s: -bootstrap-expect %s needs podManagementPolicy Parallel: OrderedReady starts a pod only once the previous one is ready", ss.file, be)
		}
	}

	data := vals["data"]
	mounted := false
	for _, m := range items(dig(c, "volumeMounts")) {
		mounted = mounted || path.Clean(scalar(dig(m, "mountPath"))) == path.Clean(data)
	}
	if data == "" || !mounted {
		t.Errorf("%s: -data %q is not a mounted volume: the node would lose its Raft log on restart (and the root filesystem is read-only)", ss.file, data)
	}
}

// TestDockerfile checks that the image runs the binary it builds, exposes the
// port its default arguments listen on, and declares their data directory a
// volume.
func TestDockerfile(t *testing.T) {
	root := moduleRoot(t)
	img, err := readDockerfile(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.entrypoint) == 0 || !namesPingpong(img.entrypoint[0]) {
		t.Fatalf("%s: the final stage's ENTRYPOINT %q does not run pingpong", dockerfile, img.entrypoint)
	}
	if !img.copied[img.entrypoint[0]] {
		t.Errorf("%s: ENTRYPOINT runs %s, which no COPY of the final stage puts there", dockerfile, img.entrypoint[0])
	}
	vals := flagValues(append(img.entrypoint[1:], img.cmd...))
	_, port, err := net.SplitHostPort(vals["listen"])
	if err != nil {
		t.Fatalf("%s: default -listen %q: %v", dockerfile, vals["listen"], err)
	}
	if !slices.Contains(img.expose, port) {
		t.Errorf("%s: EXPOSE %v does not include %s, the port of the default -listen", dockerfile, img.expose, port)
	}
	if d := vals["data"]; d != "" && !slices.Contains(img.volumes, d) {
		t.Errorf("%s: VOLUME %v does not include %s, the default -data", dockerfile, img.volumes, d)
	}
}

// TestFlagsExist checks every flag the deployment files pass to pingpong
// against the flags of the real binary, built from ./cmd/pingpong.
func TestFlagsExist(t *testing.T) {
	root := moduleRoot(t)
	var uses []use
	for _, src := range []struct {
		name string
		get  func(root string) ([]use, error)
	}{
		{"the StatefulSet in " + kubernetesDir, statefulSetUses},
		{systemdDir + "/*.service", systemdUses},
		{dockerfile, dockerfileUses},
		{deployDoc, docUses},
	} {
		u, err := src.get(root)
		if err != nil {
			t.Fatal(err)
		}
		// Every source runs pingpong with flags; finding none means the
		// parser here no longer recognises how that source runs it.
		if len(u) == 0 {
			t.Fatalf("found no pingpong flags in %s", src.name)
		}
		uses = append(uses, u...)
	}

	have, help := binaryFlags(t, root)
	missing := map[string][]string{}
	for _, u := range uses {
		if !have[u.flag] && !slices.Contains(missing[u.flag], u.where) {
			missing[u.flag] = append(missing[u.flag], u.where)
		}
	}
	if len(missing) == 0 {
		return
	}
	names := make([]string, 0, len(missing))
	for f := range missing {
		names = append(names, f)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "pingpong has no flag for %d of the flags the deployment files pass it:\n", len(names))
	for _, f := range names {
		fmt.Fprintf(&b, "  -%s, used at %s\n", f, strings.Join(missing[f], ", "))
	}
	fmt.Fprintf(&b, "pingpong -h lists: %s", help)
	t.Error(b.String())
}

// binaryFlags builds pingpong and returns the flags its -h lists, and those
// flags as one line for messages.
func binaryFlags(t *testing.T, root string) (map[string]bool, string) {
	t.Helper()
	goBin, err := goCommand()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	bin := filepath.Join(t.TempDir(), "pingpong"+exe)
	build := exec.CommandContext(ctx, goBin, "build", "-buildvcs=false", "-o", bin, "./cmd/pingpong")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pingpong: %v\n%s", err, out)
	}

	// The flag package prints its usage to stderr and exits (0 or 2,
	// depending on the Go version), so only the output matters.
	var out bytes.Buffer
	h := exec.CommandContext(ctx, bin, "-h")
	h.Stdout, h.Stderr = &out, &out
	if err := h.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("pingpong -h: %v", err)
		}
	}
	have := map[string]bool{}
	var list []string
	for _, m := range helpFlag.FindAllStringSubmatch(out.String(), -1) {
		have[m[1]] = true
		list = append(list, "-"+m[1])
	}
	if len(have) == 0 {
		t.Fatalf("pingpong -h lists no flags in the flag package's format:\n%s", out.String())
	}
	return have, strings.Join(list, " ")
}

// helpFlag matches a flag in flag.PrintDefaults' output: two spaces, a dash
// and the name at the start of a line (usage text follows indented by a tab).
var helpFlag = regexp.MustCompile(`(?m)^  -([^\s=]+)`)

// goCommand finds the go command in PATH.
func goCommand() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building pingpong needs the go command on PATH: %w", err)
	}
	return p, nil
}

// moduleRoot walks up from the working directory (the package directory
// under go test) to the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod in %s or above", wd)
		}
		dir = parent
	}
}

// Flags on command lines.

// flagWord matches a word that is a flag: one or two dashes, a name starting
// with a letter (so that "-1" stays a value), and perhaps =value.
var flagWord = regexp.MustCompile(`^--?([A-Za-z][A-Za-z0-9_.-]*)(=|$)`)

// flagNames returns the flags among words.
func flagNames(words []string) []string {
	var out []string
	for _, w := range words {
		if m := flagWord.FindStringSubmatch(w); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// flagValues maps each flag among words to its value, given as -name=value
// or as -name value; a later flag overrides an earlier one, as in the flag
// package.
func flagValues(words []string) map[string]string {
	vals := map[string]string{}
	for i, w := range words {
		m := flagWord.FindStringSubmatch(w)
		switch {
		case m == nil:
		case m[2] == "=":
			vals[m[1]] = w[len(m[0]):]
		case i+1 < len(words) && !flagWord.MatchString(words[i+1]):
			vals[m[1]] = words[i+1]
		default:
			vals[m[1]] = ""
		}
	}
	return vals
}

// namesPingpong reports whether a command word is the pingpong program: a
// path to it (/usr/local/bin/pingpong, ./cmd/pingpong) or an image of it
// (pingpong:latest, registry.example.com/dchan/pingpong:1.0.0).
func namesPingpong(w string) bool {
	if strings.HasPrefix(w, "-") {
		return false
	}
	w = w[strings.LastIndexAny(w, "/=")+1:]
	if i := strings.IndexAny(w, ":@"); i >= 0 {
		w = w[:i]
	}
	return w == "pingpong"
}

// pingpongArgs returns the words after the first one that runs pingpong on a
// shell command line, skipping output names (go build -o pingpong, docker
// build -t pingpong).
func pingpongArgs(words []string) ([]string, bool) {
	for i, w := range words {
		if !namesPingpong(w) {
			continue
		}
		if i > 0 && slices.Contains([]string{"-o", "-t", "--tag"}, words[i-1]) {
			continue
		}
		return words[i+1:], true
	}
	return nil, false
}

// shellWords splits a command line the way sh does for the plain forms the
// deployment files use: words separated by blanks, single and double quotes
// removed, an unquoted # at the start of a word beginning a comment.
func shellWords(s string) []string {
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote rune
	)
loop:
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '#' && !in:
			break loop
		case unicode.IsSpace(r):
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// logicalLine is a line with its backslash continuations joined, numbered by
// its first physical line.
type logicalLine struct {
	n    int
	text string
}

func logicalLines(lines []string, firstN int) []logicalLine {
	var out []logicalLine
	var cur strings.Builder
	start := -1
	for i, l := range lines {
		if start < 0 {
			start = firstN + i
		}
		if strings.HasSuffix(l, `\`) {
			cur.WriteString(strings.TrimSuffix(l, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(l)
		out = append(out, logicalLine{start, cur.String()})
		cur.Reset()
		start = -1
	}
	if start >= 0 {
		out = append(out, logicalLine{start, cur.String()})
	}
	return out
}

// optsLine matches a DCHAN_OPTS assignment (in an environment file, or a
// comment showing one): the systemd unit passes its value to pingpong as
// more flags.
var optsLine = regexp.MustCompile(`^\s*(?:#\s*)?DCHAN_OPTS=(.*)$`)

func usesIn(words []string, where string) []use {
	var out []use
	for _, f := range flagNames(words) {
		out = append(out, use{f, where})
	}
	return out
}

// The four places pingpong's flags are written.

func statefulSetUses(root string) ([]use, error) {
	docs, err := kubernetesDocs(root)
	if err != nil {
		return nil, err
	}
	var out []use
	for _, d := range ofKind(docs, "StatefulSet") {
		spec := dig(d.root, "spec", "template", "spec")
		for _, c := range append(items(dig(spec, "initContainers")), items(dig(spec, "containers"))...) {
			if !runsPingpong(c) {
				continue
			}
			for _, a := range containerArgs(c) {
				out = append(out, usesIn([]string{a.Value}, fmt.Sprintf("%s:%d", d.file, a.Line))...)
			}
		}
	}
	return out, nil
}

func systemdUses(root string) ([]use, error) {
	files, err := filepath.Glob(filepath.Join(root, systemdDir, "*.service"))
	if err != nil {
		return nil, err
	}
	var out []use
	for _, f := range files {
		rel := filepath.ToSlash(must(filepath.Rel(root, f)))
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		runs := false
		for _, l := range logicalLines(strings.Split(string(b), "\n"), 1) {
			where := fmt.Sprintf("%s:%d", rel, l.n)
			if m := optsLine.FindStringSubmatch(l.text); m != nil {
				out = append(out, usesIn(shellWords(m[1]), where)...)
				continue
			}
			key, val, ok := strings.Cut(strings.TrimSpace(l.text), "=")
			if !ok || !strings.HasPrefix(key, "Exec") {
				continue
			}
			// Exec lines may start with prefixes that change how systemd
			// runs the command (-, @, :, +, !).
			words := shellWords(strings.TrimLeft(val, "-@:+!"))
			if len(words) > 0 && namesPingpong(words[0]) {
				runs = true
				out = append(out, usesIn(words[1:], where)...)
			}
		}
		if !runs {
			return nil, fmt.Errorf("%s: no Exec line runs pingpong", rel)
		}
	}
	return out, nil
}

func dockerfileUses(root string) ([]use, error) {
	img, err := readDockerfile(root)
	if err != nil {
		return nil, err
	}
	var out []use
	if len(img.entrypoint) > 0 && namesPingpong(img.entrypoint[0]) {
		out = append(out, usesIn(img.entrypoint[1:], fmt.Sprintf("%s:%d", dockerfile, img.entrypointLine))...)
		out = append(out, usesIn(img.cmd, fmt.Sprintf("%s:%d", dockerfile, img.cmdLine))...)
	} else if len(img.cmd) > 0 && namesPingpong(img.cmd[0]) {
		out = append(out, usesIn(img.cmd[1:], fmt.Sprintf("%s:%d", dockerfile, img.cmdLine))...)
	}
	return out, nil
}

// docUses collects the flags in the walkthrough's code blocks: shell lines
// that run pingpong (directly, through go run or as an image), DCHAN_OPTS
// lines, and in YAML blocks the args of a container running pingpong.
func docUses(root string) ([]use, error) {
	b, err := os.ReadFile(filepath.Join(root, deployDoc))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	var out []use
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "```")
		if !ok {
			continue
		}
		first := i + 1 // index of the block's first line
		end := first
		for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
			end++
		}
		block := lines[first:end]
		i = end
		switch strings.ToLower(strings.Fields(info + " x")[0]) {
		case "yaml", "yml":
			u, err := yamlBlockUses(block, first+1)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: YAML block: %v", deployDoc, first, err)
			}
			out = append(out, u...)
		default:
			for _, l := range logicalLines(block, first+1) {
				where := fmt.Sprintf("%s:%d", deployDoc, l.n)
				if m := optsLine.FindStringSubmatch(l.text); m != nil {
					out = append(out, usesIn(shellWords(m[1]), where)...)
				} else if args, ok := pingpongArgs(shellWords(l.text)); ok {
					out = append(out, usesIn(args, where)...)
				}
			}
		}
	}
	return out, nil
}

// yamlBlockUses finds, in a YAML snippet whose first line is line firstN of
// the doc, every mapping that is a container running pingpong (by its
// command, or with args alone, as the image's entrypoint is pingpong).
func yamlBlockUses(block []string, firstN int) ([]use, error) {
	dec := yaml.NewDecoder(strings.NewReader(strings.Join(block, "\n")))
	var out []use
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		walk(&n, func(m *yaml.Node) {
			if m.Kind != yaml.MappingNode {
				return
			}
			cmd, args := items(dig(m, "command")), items(dig(m, "args"))
			if len(cmd) > 0 {
				if !namesPingpong(scalar(cmd[0])) {
					return
				}
				args = append(slices.Clone(cmd[1:]), args...)
			}
			for _, a := range args {
				out = append(out, usesIn([]string{a.Value}, fmt.Sprintf("%s:%d", deployDoc, firstN+a.Line-1))...)
			}
		})
	}
}

// The Dockerfile's final stage.

type image struct {
	entrypoint, cmd         []string
	entrypointLine, cmdLine int
	expose, volumes         []string
	copied                  map[string]bool // files COPY puts in place
}

func readDockerfile(root string) (image, error) {
	b, err := os.ReadFile(filepath.Join(root, dockerfile))
	if err != nil {
		return image{}, err
	}
	var img image
	for _, l := range logicalLines(strings.Split(string(b), "\n"), 1) {
		text := strings.TrimSpace(l.text)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(text, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			img = image{} // a new stage: only the last one is the image
		case "ENTRYPOINT":
			if img.entrypoint, err = dockerWords(rest); err != nil {
				return image{}, fmt.Errorf("%s:%d: %v", dockerfile, l.n, err)
			}
			img.entrypointLine = l.n
		case "CMD":
			if img.cmd, err = dockerWords(rest); err != nil {
				return image{}, fmt.Errorf("%s:%d: %v", dockerfile, l.n, err)
			}
			img.cmdLine = l.n
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				img.expose = append(img.expose, strings.TrimSuffix(p, "/tcp"))
			}
		case "VOLUME":
			v, err := dockerWords(rest)
			if err != nil {
				return image{}, fmt.Errorf("%s:%d: %v", dockerfile, l.n, err)
			}
			img.volumes = append(img.volumes, v...)
		case "COPY", "ADD":
			var paths []string
			for _, w := range shellWords(rest) {
				if !strings.HasPrefix(w, "--") {
					paths = append(paths, w)
				}
			}
			if len(paths) < 2 {
				continue
			}
			dest := paths[len(paths)-1]
			if img.copied == nil {
				img.copied = map[string]bool{}
			}
			for _, src := range paths[:len(paths)-1] {
				if strings.HasSuffix(dest, "/") {
					img.copied[path.Join(dest, path.Base(src))] = true
				} else {
					img.copied[dest] = true
				}
			}
		}
	}
	return img, nil
}

// dockerWords reads an instruction's arguments in exec form (a JSON array)
// or shell form.
func dockerWords(s string) ([]string, error) {
	if !strings.HasPrefix(s, "[") {
		return shellWords(s), nil
	}
	var w []string
	err := json.Unmarshal([]byte(s), &w)
	return w, err
}

// Kubernetes manifests.

// manifest is one YAML document of a file.
type manifest struct {
	file string     // relative to the module root
	root *yaml.Node // the document's top-level mapping
}

func yamlFiles(root string) ([]string, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(root, kubernetesDir, pat))
		if err != nil {
			return nil, err
		}
		for _, f := range m {
			files = append(files, filepath.ToSlash(must(filepath.Rel(root, f))))
		}
	}
	sort.Strings(files)
	return files, nil
}

// readYAML reads every document of a file, skipping empty ones (as between
// two "---" lines).
func readYAML(root, rel string) ([]manifest, error) {
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []manifest
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", rel, err)
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			continue
		}
		top := n.Content[0]
		if top.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: the document is not a mapping", rel, top.Line)
		}
		// Decoding into a map also rejects what a node tree lets through,
		// such as a key given twice (kubectl refuses those).
		var m map[string]any
		if err := top.Decode(&m); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", rel, top.Line, err)
		}
		docs = append(docs, manifest{rel, top})
	}
}

func kubernetesDocs(root string) ([]manifest, error) {
	files, err := yamlFiles(root)
	if err != nil {
		return nil, err
	}
	var docs []manifest
	for _, f := range files {
		d, err := readYAML(root, f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

func ofKind(docs []manifest, kind string) []manifest {
	var out []manifest
	for _, d := range docs {
		if scalar(dig(d.root, "kind")) == kind {
			out = append(out, d)
		}
	}
	return out
}

// runsPingpong reports whether a container runs pingpong: its command says
// so, or it has none and its image is pingpong's, whose entrypoint is the
// binary.
func runsPingpong(c *yaml.Node) bool {
	if cmd := items(dig(c, "command")); len(cmd) > 0 {
		return namesPingpong(scalar(cmd[0]))
	}
	return namesPingpong(scalar(dig(c, "image")))
}

// containerArgs returns the words a container passes to pingpong: its
// command after the program, then its args.
func containerArgs(c *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	if cmd := items(dig(c, "command")); len(cmd) > 0 {
		out = append(out, cmd[1:]...)
	}
	return append(out, items(dig(c, "args"))...)
}

// dig follows keys through nested mappings; nil where one is missing.
func dig(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			n = n.Content[0]
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// scalar is a scalar node's value; "" for a missing node, a null or a
// collection.
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func items(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func scalars(ns []*yaml.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = scalar(n)
	}
	return out
}

func stringMap(n *yaml.Node) map[string]string {
	out := map[string]string{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = scalar(n.Content[i+1])
	}
	return out
}

func walk(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walk(c, f)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
