package channel

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/internal/testcerts"
)

// TestCertificateForAnotherNodeIsRefusedAtNew: a node given n3's
// certificate and the ID n2 fails New, naming both, instead of joining as
// a node its peers would take for n3.
func TestCertificateForAnotherNodeIsRefusedAtNew(t *testing.T) {
	ca, err := testcerts.NewAuthority("cluster")
	require.NoError(t, err)
	srv, cli, err := ca.NodeTLS("n3")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := New(ctx, WithNodeID("n2"), WithTLS(srv, cli), WithLogger(zaptest.NewLogger(t)))
	if err == nil {
		_ = n.Close()
	}
	require.ErrorIs(t, err, ErrInvalidOption)
	assert.Contains(t, err.Error(), `"n2"`)
	assert.Contains(t, err.Error(), `"n3"`)
}

// TestNodeIDDefaultsToTheCertificate: without WithNodeID, a node with a
// certificate takes the ID its certificate names.
func TestNodeIDDefaultsToTheCertificate(t *testing.T) {
	ca, err := testcerts.NewAuthority("cluster")
	require.NoError(t, err)
	srv, cli, err := ca.NodeTLS("n7")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	n, err := New(ctx, WithTLS(srv, cli), WithLogger(zaptest.NewLogger(t)), fastRegistry())
	require.NoError(t, err)
	defer n.Close()
	assert.Equal(t, "n7", n.ID())
}
