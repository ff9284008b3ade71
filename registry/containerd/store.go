// Package containerd uploads bundles straight into a containerd's content
// store and image store, through containerd's own client code (its gRPC
// API and content and lease proxies): Store is an oci.Sink.
//
// containerd's store is content-addressed and shared by every repository,
// so Store answers BlobExists from the content store (an increment sends
// only what the node lacks, and Upload's base check refuses one whose base
// blobs are missing before anything is written); bytes it holds for
// another namespace are committed into this one without being sent. Blobs
// stream into a content writer and are committed with their expected size
// and digest: containerd checks both. Manifests are stored with the garbage collection
// labels containerd's own pull sets (index -> children, manifest -> config
// and layers); referrers and cosign-style signatures are stored as content
// kept alive by a label on the manifest they refer to. Images are named
// after their source (registry/repository:tag, and repository@digest like
// the CRI plugin does) and created by Commit, so that an upload that fails
// names nothing. Everything is written under a lease, so that containerd's
// garbage collector cannot take a blob between its write and the image
// that refers to it; Commit (or Close) ends the lease. Nothing is written,
// not even the lease, when the node already has everything.
package containerd

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/containerd/containerd/content"
	contentproxy "github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/identifiers"
	"github.com/containerd/containerd/leases"
	leasesproxy "github.com/containerd/containerd/leases/proxy"
	"github.com/containerd/containerd/namespaces"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/oci"
)

// ErrContainerd wraps every error containerd reported, and a failure to
// reach it.
var ErrContainerd = errors.New("containerd")

const (
	// DefaultNamespace is the namespace the kubelet's CRI plugin reads.
	DefaultNamespace = "k8s.io"
	// dialTimeout bounds New's connection and version check.
	dialTimeout = 30 * time.Second
	// leaseExpiry bounds how long an upload that died keeps its blobs
	// from the garbage collector.
	leaseExpiry = 24 * time.Hour
	// maxMsg is containerd's own client's gRPC message limit.
	maxMsg = 16 << 20
	// chunk is how much one content write request carries.
	chunk = 1 << 20
)

// Options configure New.
type Options struct {
	// Address is the path of containerd's unix socket (a unix:// prefix is
	// accepted). Empty means DefaultAddress().
	Address string
	// Namespace is the containerd namespace. Empty means
	// $CONTAINERD_NAMESPACE, else DefaultNamespace.
	Namespace string
	// Platforms keeps only these children of multi-platform indexes (and
	// their referrers); empty keeps every platform the bundle has. An
	// image that is not an index goes in whatever its platform.
	Platforms []platform.Platform
	// Log receives what was written; nil discards.
	Log *slog.Logger
}

// DefaultAddress is $CONTAINERD_ADDRESS, else /run/containerd/containerd.sock.
func DefaultAddress() string {
	if a := os.Getenv("CONTAINERD_ADDRESS"); a != "" {
		return strings.TrimPrefix(a, "unix://")
	}
	return "/run/containerd/containerd.sock"
}

// Stats count what a Store wrote.
type Stats struct {
	Blobs, Manifests int   // content written
	Bytes            int64 // of blobs and manifests written
	Shared           int   // blobs and manifests containerd held for another namespace: committed, not sent
	Images           int   // image names created or moved
	Unchanged        int   // image names that already pointed at their manifest
	Pinned           int   // referrers and signatures labelled onto their subject
}

// Store is an oci.Sink that writes into containerd. Its methods are safe
// for concurrent use.
type Store struct {
	address, ns string
	conn        *grpc.ClientConn
	content     content.Store
	leases      leases.Manager
	images      imagesapi.ImagesClient
	plan        *plan
	log         *slog.Logger

	mu        sync.Mutex
	lease     *leases.Lease
	pending   map[string]target // image name -> top manifest, created by Commit
	stats     Stats
	committed bool
}

var _ oci.Sink = (*Store)(nil)

// New connects to containerd, checks that it answers, and plans which
// manifests and blobs of m go in under which names. It writes nothing.
// Close the Store when done.
func New(ctx context.Context, m *meta.Meta, opts Options) (*Store, error) {
	s := &Store{address: SocketPath(opts.Address), ns: opts.Namespace, log: opts.Log, pending: map[string]target{}}
	if s.ns == "" {
		s.ns = cmp.Or(os.Getenv("CONTAINERD_NAMESPACE"), DefaultNamespace)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := identifiers.Validate(s.ns); err != nil {
		return nil, fmt.Errorf("loading into containerd: namespace %q: %w", s.ns, err)
	}
	p, err := newPlan(m, opts.Platforms)
	if err != nil {
		return nil, fmt.Errorf("loading into containerd: %w", err)
	}
	s.plan = p
	if err := s.dial(ctx); err != nil {
		return nil, fmt.Errorf("loading into containerd: %w", err)
	}
	return s, nil
}

// SocketPath resolves Options.Address: the path of the socket.
func SocketPath(a string) string {
	if a = strings.TrimPrefix(a, "unix://"); a == "" {
		return DefaultAddress()
	}
	return a
}

// Namespace is the containerd namespace the Store writes into.
func (s *Store) Namespace() string { return s.ns }

// Target maps a repository of the bundle to the reference Upload hands the
// Store: the Store names images after their source, from the meta file,
// and needs only the repository back.
func (s *Store) Target(repo string) (ref.Ref, error) {
	return ref.Ref{Scheme: "reg", Registry: "containerd", Repository: repo, Reference: "containerd/" + repo}, nil
}

// dial connects to the socket and asks containerd's version.
func (s *Store) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, "unix://"+s.address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", strings.TrimPrefix(addr, "unix://"))
		}),
		grpc.WithBlock(), grpc.FailOnNonTempDialError(true), grpc.WithReturnConnectionError(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
	if err != nil {
		return fmt.Errorf("%w at %s is not reachable (is containerd running, and may this user use its socket?): %v", ErrContainerd, s.address, err)
	}
	v, err := versionapi.NewVersionClient(conn).Version(ctx, &emptypb.Empty{})
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w at %s: version: %v", ErrContainerd, s.address, errdefs.FromGRPC(err))
	}
	s.log.Debug("containerd", "socket", s.address, "version", v.Version, "namespace", s.ns)
	s.conn = conn
	s.content = contentproxy.NewContentStore(contentapi.NewContentClient(conn))
	s.leases = leasesproxy.NewLeaseManager(leasesapi.NewLeasesClient(conn))
	s.images = imagesapi.NewImagesClient(conn)
	return nil
}

// nsCtx is ctx in the Store's namespace, under its lease when it has one.
func (s *Store) nsCtx(ctx context.Context) context.Context {
	ctx = namespaces.WithNamespace(ctx, s.ns)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease != nil {
		ctx = leases.WithLease(ctx, s.lease.ID)
	}
	return ctx
}

// writeCtx is ctx in the namespace under the Store's lease, taken on the
// first write.
func (s *Store) writeCtx(ctx context.Context) (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	ctx = namespaces.WithNamespace(ctx, s.ns)
	if s.lease == nil {
		l, err := s.leases.Create(ctx, leases.WithRandomID(), leases.WithExpiration(leaseExpiry), leases.WithLabels(map[string]string{"ferry": "upload"}))
		if err != nil {
			return nil, fmt.Errorf("%w: taking a lease: %v", ErrContainerd, errdefs.FromGRPC(err))
		}
		s.lease = &l
	}
	return leases.WithLease(ctx, s.lease.ID), nil
}

// usable reports why the Store takes nothing more. s.mu is held.
func (s *Store) usable() error {
	if s.committed {
		return errors.New("loading into containerd: already committed")
	}
	return nil
}

// wanted says whether d is a blob or manifest the plan loads.
func (s *Store) wanted(d digest.Digest) bool {
	return s.plan.blobs[d] || s.plan.manifests[d]
}

// has asks the content store whether it holds d in the namespace.
func (s *Store) has(ctx context.Context, d digest.Digest) (content.Info, bool, error) {
	info, err := s.content.Info(s.nsCtx(ctx), d)
	switch {
	case errdefs.IsNotFound(err):
		return content.Info{}, false, nil
	case err != nil:
		return content.Info{}, false, fmt.Errorf("%w: content %s: %v", ErrContainerd, d, err)
	}
	return info, true, nil
}

// BlobExists is true for blobs the plan leaves out (another platform) and
// for blobs containerd has in the namespace. Repositories do not matter.
func (s *Store) BlobExists(ctx context.Context, _ ref.Ref, d descriptor.Descriptor) (bool, error) {
	if !s.wanted(d.Digest) {
		return true, nil
	}
	info, ok, err := s.has(ctx, d.Digest)
	if ok && info.Size != d.Size {
		return false, fmt.Errorf("%w: content %s has %d bytes, the bundle %d: %w", ErrContainerd, d.Digest, info.Size, d.Size, oci.ErrSizeMismatch)
	}
	return ok, err
}

// BlobMount succeeds for a blob BlobExists reports: one content store
// serves every repository.
func (s *Store) BlobMount(ctx context.Context, _, r ref.Ref, d descriptor.Descriptor) error {
	ok, err := s.BlobExists(ctx, r, d)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("loading into containerd: mounting %s: %w", d.Digest, oci.ErrUnsupported)
	}
	return nil
}

// BlobPut streams a wanted blob into the content store; containerd checks
// its size and digest when it is committed. Blobs the plan leaves out are
// read (and so checked) and dropped.
func (s *Store) BlobPut(ctx context.Context, _ ref.Ref, d descriptor.Descriptor, rdr io.Reader) error {
	if !s.wanted(d.Digest) {
		if _, err := io.Copy(io.Discard, rdr); err != nil {
			return fmt.Errorf("loading into containerd: blob %s: %w", d.Digest, err)
		}
		return nil
	}
	how, err := s.write(ctx, d, rdr, nil)
	if err != nil {
		return fmt.Errorf("loading into containerd: blob %s: %w", d.Digest, err)
	}
	s.count(how, d.Size, &s.stats.Blobs)
	return nil
}

// ManifestPut stores a wanted manifest as content with its GC labels,
// labels the manifest a referrer or signature refers to, and records the
// image names a tag (or a digest-only image) gives, for Commit.
func (s *Store) ManifestPut(ctx context.Context, r ref.Ref, m manifest.Manifest) error {
	md := m.GetDescriptor()
	if !s.plan.manifests[md.Digest] {
		if r.Tag != "" {
			return fmt.Errorf("loading into containerd: tag %s: manifest %s is not one New planned", r.Tag, md.Digest)
		}
		return nil // an index's child of another platform
	}
	if err := s.putManifest(ctx, md, m); err != nil {
		return fmt.Errorf("loading into containerd: manifest %s: %w", md.Digest, err)
	}
	if subject, ok := s.plan.pinned[md.Digest]; ok {
		if err := s.pin(ctx, subject, md.Digest); err != nil {
			return fmt.Errorf("loading into containerd: %w", err)
		}
	}
	key := r.Repository + "@" + md.Digest.String()
	if r.Tag != "" {
		key = r.Repository + ":" + r.Tag
	}
	n, ok := s.plan.names[key]
	if !ok {
		return nil
	}
	t := target{MediaType: md.MediaType, Digest: md.Digest, Size: md.Size}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	for _, name := range []string{n.tag, n.digest} {
		if name != "" {
			s.pending[name] = t
		}
	}
	return nil
}

// putManifest writes manifest m unless containerd has it.
func (s *Store) putManifest(ctx context.Context, md descriptor.Descriptor, m manifest.Manifest) error {
	if _, ok, err := s.has(ctx, md.Digest); err != nil || ok {
		return err
	}
	raw, err := m.RawBody()
	if err != nil {
		return err
	}
	labels, err := gcLabels(m)
	if err != nil {
		return err
	}
	how, err := s.write(ctx, md, bytes.NewReader(raw), labels)
	if err != nil {
		return err
	}
	s.count(how, md.Size, &s.stats.Manifests)
	return nil
}

// pin labels subject so that the garbage collector keeps referrer r as
// long as subject. A subject containerd does not hold is reported, not
// an error: the referrer is then not kept.
func (s *Store) pin(ctx context.Context, subject, r digest.Digest) error {
	info, ok, err := s.has(ctx, subject)
	if err != nil {
		return err
	}
	if !ok {
		s.log.Warn("referrer not kept: containerd does not hold its subject", "referrer", r, "subject", subject)
		return nil
	}
	key := pinLabel(r)
	if info.Labels[key] == r.String() {
		return nil
	}
	wctx, err := s.writeCtx(ctx)
	if err != nil {
		return err
	}
	if _, err := s.content.Update(wctx, content.Info{Digest: subject, Labels: map[string]string{key: r.String()}}, "labels."+key); err != nil {
		return fmt.Errorf("%w: labelling %s with referrer %s: %v", ErrContainerd, subject, r, err)
	}
	s.mu.Lock()
	s.stats.Pinned++
	s.mu.Unlock()
	return nil
}

// Commit names the images whose manifests were put (an image already
// pointing at its manifest is left alone) and ends the lease: from then
// on the images keep their content from the garbage collector.
func (s *Store) Commit(ctx context.Context) error {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return err
	}
	pending := s.pending
	s.mu.Unlock()
	ictx := s.nsCtx(ctx)
	for _, name := range slices.Sorted(maps.Keys(pending)) {
		t := pending[name]
		wrote, err := setImage(ictx, s.images, name, t)
		if err != nil {
			return fmt.Errorf("loading into containerd: %w: %w", ErrContainerd, err)
		}
		s.mu.Lock()
		if wrote {
			s.stats.Images++
		} else {
			s.stats.Unchanged++
		}
		s.mu.Unlock()
		if wrote {
			s.log.Info("named in containerd", "image", name, "digest", t.Digest, "namespace", s.ns)
		}
	}
	s.mu.Lock()
	s.committed = true
	st := s.stats
	s.mu.Unlock()
	if st.Blobs+st.Manifests+st.Shared+st.Images+st.Pinned == 0 {
		s.log.Info("containerd has everything: nothing written", "images", st.Unchanged, "namespace", s.ns)
	} else {
		s.log.Info("loaded into containerd", "blobs", st.Blobs, "manifests", st.Manifests, "bytes", st.Bytes, "shared", st.Shared, "names", st.Images, "referrers", st.Pinned, "namespace", s.ns)
	}
	return s.release(ctx)
}

// Stats says what the Store wrote so far.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// release ends the lease, if one was taken.
func (s *Store) release(ctx context.Context) error {
	s.mu.Lock()
	l := s.lease
	s.lease = nil
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.WithoutCancel(ctx), s.ns), 30*time.Second)
	defer cancel()
	if err := s.leases.Delete(ctx, *l); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("loading into containerd: ending lease %s (it expires by itself in %s): %w: %v", l.ID, leaseExpiry, ErrContainerd, err)
	}
	return nil
}

// Close ends the lease of an upload that did not commit (its content is
// then left to containerd's garbage collector) and the connection.
func (s *Store) Close() error {
	err := s.release(context.Background())
	_ = s.conn.Close() // a second Close only says it is closed
	return err
}
