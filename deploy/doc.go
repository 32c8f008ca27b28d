// Package deploy holds deployment examples for dchan's deployable node, the
// pingpong program: a Dockerfile at the repository root, Kubernetes
// manifests in deploy/kubernetes and a systemd unit in deploy/systemd,
// walked through in docs/deploy.md.
//
// The package has no code of its own. Its tests keep the examples honest:
// every manifest must parse, every flag they pass to pingpong must exist in
// the real binary, and the ports, names and references that tie the
// manifests together must agree.
package deploy
