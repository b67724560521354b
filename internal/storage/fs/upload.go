package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// uploadDir validates repo and id and returns the session directory.
func (s *Store) uploadDir(repo, id string) (string, error) {
	rdir, err := s.repoDir(repo, storage.ErrUploadUnknown)
	if err != nil {
		return "", err
	}
	if !backend.ValidUploadID(id) {
		return "", fsNameErr("upload id", id, storage.ErrUploadUnknown)
	}
	return filepath.Join(rdir, dirUploads, id), nil
}

func uploadUnknown(repo, id string) error {
	return fmt.Errorf("fs: upload %s in %s: %w", id, repo, storage.ErrUploadUnknown)
}

// BeginUpload creates the session directory atomically: it is assembled
// under a temporary name and renamed into place.
func (s *Store) BeginUpload(ctx context.Context, repo string) (_ storage.UploadInfo, err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return storage.UploadInfo{}, err
	}
	rdir, err := s.repoDir(repo, nil)
	if err != nil {
		return storage.UploadInfo{}, err
	}
	udir := filepath.Join(rdir, dirUploads)
	if err := mkdirAll(udir); err != nil {
		return storage.UploadInfo{}, err
	}
	id := backend.RandomHex(16)
	started := time.Now().UTC().Round(0)

	tmp, err := os.MkdirTemp(udir, tmpPrefix+"*")
	if err != nil {
		return storage.UploadInfo{}, fmt.Errorf("fs: begin upload: %w", err)
	}
	fail := func(err error) (storage.UploadInfo, error) {
		os.RemoveAll(tmp)
		return storage.UploadInfo{}, err
	}
	if err := s.writeFileAtomic(filepath.Join(tmp, fileStartedAt), []byte(started.Format(time.RFC3339Nano))); err != nil {
		return fail(err)
	}
	if err := s.writeFileAtomic(filepath.Join(tmp, fileData), nil); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(udir, id)); err != nil {
		return fail(fmt.Errorf("fs: begin upload: %w", err))
	}
	if err := syncDir(udir); err != nil {
		return storage.UploadInfo{}, err
	}
	return storage.UploadInfo{ID: id, Repo: repo, StartedAt: started}, nil
}

// readStartedAt returns when the session in dir began; if the file is
// unreadable it falls back to the directory's modification time.
func readStartedAt(dir string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileStartedAt))
	if err == nil {
		if t, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); perr == nil {
			return t, nil
		}
	} else if !isNotExist(err) {
		return time.Time{}, fmt.Errorf("fs: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime().UTC(), nil
}

// StatUpload returns the session; Size is the real size of its data file
// once its hash state is settled with it (settleSession), or of the blob it
// was moved to by a commit that was interrupted (see CommitUpload).
func (s *Store) StatUpload(ctx context.Context, repo, id string) (storage.UploadInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.UploadInfo{}, err
	}
	dir, err := s.uploadDir(repo, id)
	if err != nil {
		return storage.UploadInfo{}, err
	}
	var size int64
	if mu := s.uploadLock(id); mu.TryLock() {
		size, err = s.settleSession(ctx, dir)
		mu.Unlock()
	} else {
		// An append or commit holds the lock (and settles the session
		// itself): report the file as it is rather than wait for it.
		var fi os.FileInfo
		if fi, err = os.Stat(filepath.Join(dir, fileData)); err == nil {
			size = fi.Size()
		}
	}
	if err != nil {
		if !isNotExist(err) {
			return storage.UploadInfo{}, fmt.Errorf("fs: stat upload: %w", err)
		}
		_, blob, ok := s.committedBlob(dir)
		if !ok {
			return storage.UploadInfo{}, uploadUnknown(repo, id)
		}
		fi, err := os.Stat(blob)
		if err != nil {
			return storage.UploadInfo{}, uploadUnknown(repo, id)
		}
		size = fi.Size()
	}
	started, err := readStartedAt(dir)
	if err != nil {
		if isNotExist(err) {
			return storage.UploadInfo{}, uploadUnknown(repo, id)
		}
		return storage.UploadInfo{}, err
	}
	return storage.UploadInfo{ID: id, Repo: repo, Size: size, StartedAt: started}, nil
}

// Hash state file: magic, boot id, covered size, state length, state,
// CRC-32C of all that. The state is always sha256 (the algorithm of a commit
// is not known before it, and sha256 is what clients use). Version 1 files
// ("BHS1", no boot id) were written by older versions after an fsync of the
// data, so they are trusted like a state of the current boot.
var (
	hashStateMagic   = [4]byte{'B', 'H', 'S', '2'}
	hashStateMagicV1 = [4]byte{'B', 'H', 'S', '1'}
	crcTable         = crc32.MakeTable(crc32.Castagnoli)
)

// bootIDLen is the length of the boot id recorded in a hash state.
const bootIDLen = 16

// currentBootID identifies this boot of the machine (Linux: a hash of
// /proc/sys/kernel/random/boot_id). Where there is none, it is random per
// process, so every restart is treated like a reboot: safe, and at worst one
// re-hash of each open session.
func currentBootID() [bootIDLen]byte {
	var id [bootIDLen]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		copy(id[:], backend.RandomHex(bootIDLen))
		return id
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
	copy(id[:], sum[:])
	return id
}

func encodeHashState(boot [bootIDLen]byte, size int64, h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("fs: hash state not marshalable")
	}
	state, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 4+bootIDLen+12+len(state)+4)
	b = append(b, hashStateMagic[:]...)
	b = append(b, boot[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = binary.BigEndian.AppendUint32(b, uint32(len(state)))
	b = append(b, state...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	return b, nil
}

// savedState is a decoded hash state file.
type savedState struct {
	size    int64
	state   []byte // the marshalled sha256 state over size bytes
	trusted bool   // written in this boot (or by a version that synced first)
}

// readHashState decodes the session's hash state file; ok is false when
// there is none or it is damaged.
func (s *Store) readHashState(dir string) (st savedState, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, fileHashState))
	if err != nil || len(b) < 20 {
		return savedState{}, false
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return savedState{}, false
	}
	switch [4]byte(body[:4]) {
	case hashStateMagic:
		if len(body) < 4+bootIDLen+12 {
			return savedState{}, false
		}
		st.trusted = [bootIDLen]byte(body[4:4+bootIDLen]) == s.bootID
		body = body[4+bootIDLen:]
	case hashStateMagicV1:
		st.trusted = true
		body = body[4:]
	default:
		return savedState{}, false
	}
	st.size = int64(binary.BigEndian.Uint64(body[:8]))
	n := binary.BigEndian.Uint32(body[8:12])
	if int(n) != len(body)-12 || st.size < 0 {
		return savedState{}, false
	}
	st.state = body[12:]
	return st, true
}

// loadHashState returns a sha256 hash resumed at size bytes, or nil if the
// saved state does not cover exactly size bytes, was written before a reboot
// (see settleSession) or is damaged.
func (s *Store) loadHashState(dir string, size int64) hash.Hash {
	if size == 0 {
		return sha256.New()
	}
	st, ok := s.readHashState(dir)
	if !ok || !st.trusted || st.size != size {
		return nil
	}
	return unmarshalSHA256(st.state)
}

func unmarshalSHA256(state []byte) hash.Hash {
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok || u.UnmarshalBinary(state) != nil {
		return nil
	}
	return h
}

// hashRange feeds [from, to) of f into h.
func hashRange(ctx context.Context, h hash.Hash, f *os.File, from, to int64) error {
	if to <= from {
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if _, err := io.CopyBuffer(h, ctxReader{ctx: ctx, r: io.NewSectionReader(f, from, to-from)}, *bp); err != nil {
		return fmt.Errorf("fs: hash upload: %w", err)
	}
	return nil
}

// settleSession brings the session's hash state in line with its data file,
// so that the size the registry reports (the data file's) is always bytes
// that are in the file and hashed from what the file holds. Appends do not
// sync the data (durability is the commit's), so after a crash the two may
// disagree:
//
//   - state of this boot covering the whole file: nothing to do (the common
//     case, a few syscalls);
//   - state of this boot covering less (a process killed between the data
//     and the state write, or a failed state write): the page cache survived,
//     the state is a prefix of the file; the rest is hashed from the file;
//   - anything else — a state written before a reboot (power loss: unsynced
//     data may be gone, and a state may describe bytes the file no longer
//     holds), a state covering more than the file (data lost behind it), a
//     damaged or missing one: the file is re-hashed from its first byte. A
//     state from before the reboot that the file still covers is checked
//     against that re-hash: if the file's first bytes hash differently, they
//     are not what the client sent and the data file is emptied (the client
//     resumes from 0).
//
// A re-hashed state is written durably (synced, with its directory) before
// the session is appended to, so a stale state describing lost bytes can
// never come back after a later crash and be taken for the new bytes. It
// returns the session's size. The caller holds the session's lock.
func (s *Store) settleSession(ctx context.Context, dir string) (int64, error) {
	f, err := os.OpenFile(filepath.Join(dir, fileData), os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("fs: upload: %w", err)
	}
	size := fi.Size()
	st, ok := s.readHashState(dir)
	statePath := filepath.Join(dir, fileHashState)
	if ok && st.trusted && st.size <= size {
		if st.size == size {
			return size, nil
		}
		if h := unmarshalSHA256(st.state); h != nil {
			if err := hashRange(ctx, h, f, st.size, size); err != nil {
				return 0, err
			}
			if b, err := encodeHashState(s.bootID, size, h); err == nil {
				writeStateFile(statePath, b)
			}
			return size, nil
		}
	}
	if !ok && size == 0 {
		if _, err := os.Stat(statePath); isNotExist(err) {
			return 0, nil // a new session
		}
	}
	h := sha256.New()
	var from int64
	if ok && !st.trusted && st.size <= size {
		// A state from before a reboot that the file still covers: the
		// file's first st.size bytes must hash as they did then.
		if err := hashRange(ctx, h, f, 0, st.size); err != nil {
			return 0, err
		}
		from = st.size
		if saved := unmarshalSHA256(st.state); saved != nil && !bytes.Equal(saved.Sum(nil), h.Sum(nil)) {
			// They are not the bytes the client sent: start over.
			if err := f.Truncate(0); err != nil {
				return 0, fmt.Errorf("fs: upload: %w", err)
			}
			if err := f.Sync(); err != nil {
				return 0, fmt.Errorf("fs: upload: %w", err)
			}
			h, from, size = sha256.New(), 0, 0
		}
	}
	if err := hashRange(ctx, h, f, from, size); err != nil {
		return 0, err
	}
	b, err := encodeHashState(s.bootID, size, h)
	if err != nil {
		return 0, err
	}
	if err := s.writeFileAtomic(statePath, b); err != nil {
		return 0, err
	}
	return size, nil
}

// AppendUpload writes r at the end of the session's data file, hashing as it
// goes, and saves the hash state afterwards. Nothing is synced: durability
// is the commit's (settleSession says why the reported size stays true after
// any crash). On a read error the bytes written stay and the returned size
// says where to resume.
func (s *Store) AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (_ int64, err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dir, err := s.uploadDir(repo, id)
	if err != nil {
		return 0, err
	}
	mu := s.uploadLock(id)
	mu.Lock()
	defer mu.Unlock()

	dataPath := filepath.Join(dir, fileData)
	if _, err := s.settleSession(ctx, dir); err != nil {
		if isNotExist(err) {
			return 0, uploadUnknown(repo, id)
		}
		return 0, fmt.Errorf("fs: append upload: %w", err)
	}
	f, err := os.OpenFile(dataPath, os.O_WRONLY, 0)
	if err != nil {
		if isNotExist(err) {
			return 0, uploadUnknown(repo, id)
		}
		return 0, fmt.Errorf("fs: append upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("fs: append upload: %w", err)
	}
	size := fi.Size()
	if offset != size {
		return size, fmt.Errorf("fs: upload %s: chunk at %d, upload ends at %d: %w", id, offset, size, storage.ErrUploadOffset)
	}
	h := s.loadHashState(dir, size)
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return size, fmt.Errorf("fs: append upload: %w", err)
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	src := ctxReader{ctx: ctx, r: r}
	var written, flushed int64
	var readErr, writeErr error
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if s.maxBlobSize > 0 && size+written+int64(n) > s.maxBlobSize {
				readErr = fmt.Errorf("fs: upload %s over %d bytes: %w", id, s.maxBlobSize, storage.ErrTooLarge)
				break
			}
			werr := s.writeFault(dataPath)
			m := 0
			if werr == nil {
				m, werr = f.Write(buf[:n])
			}
			written += int64(m)
			if werr != nil {
				writeErr = werr
				break
			}
			if h != nil {
				h.Write(buf[:n])
			}
			if written-flushed >= writebackChunk {
				startWriteback(f, size+flushed, written-flushed)
				flushed = written
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}

	newSize := size + written
	if written > 0 && h != nil && writeErr == nil {
		// Not synced: a lost or stale state only costs a re-hash
		// (settleSession). Without a state, settleSession re-hashes.
		if b, err := encodeHashState(s.bootID, newSize, h); err == nil {
			writeStateFile(filepath.Join(dir, fileHashState), b)
		}
	}
	if writeErr != nil {
		if fi, err := f.Stat(); err == nil {
			newSize = fi.Size()
		}
		return newSize, fmt.Errorf("fs: append upload: write: %w", writeErr)
	}
	if readErr != nil {
		if errors.Is(readErr, storage.ErrTooLarge) {
			return newSize, readErr
		}
		return newSize, fmt.Errorf("fs: append upload: read: %w", readErr)
	}
	return newSize, nil
}

// syncFile flushes the file at path to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("fs: commit upload: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fs: commit upload: sync: %w", err)
	}
	return nil
}

// writebackChunk is how much an append writes before it asks the kernel to
// start writing it back (see startWriteback).
const writebackChunk = 16 << 20

// writeStateFile replaces path with b (temp + rename, no sync: the content is
// checksummed, and a lost or stale state only costs a re-hash).
func writeStateFile(path string, b []byte) {
	f, err := os.CreateTemp(filepath.Dir(path), tmpPrefix+"*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), path) != nil {
		os.Remove(f.Name())
	}
}

// sessionDigest returns the digest (with alg) of the size bytes in the data
// file, resuming from the saved state when it covers the whole file.
func (s *Store) sessionDigest(ctx context.Context, dir, alg string, size int64) (digest.Digest, error) {
	if alg == "sha256" {
		if h := s.loadHashState(dir, size); h != nil {
			return oci.HashDigest(alg, h), nil
		}
	}
	f, err := os.Open(filepath.Join(dir, fileData))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := oci.NewHash(alg)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if _, err := io.CopyBuffer(h, ctxReader{ctx: ctx, r: io.LimitReader(f, size)}, *bp); err != nil {
		return "", fmt.Errorf("fs: hash upload: %w", err)
	}
	return oci.HashDigest(alg, h), nil
}

// removeSession makes the session disappear at once (rename) and then
// deletes its files.
func removeSession(dir string) error {
	parent := filepath.Dir(dir)
	gone := filepath.Join(parent, delPrefix+filepath.Base(dir)+"-"+backend.RandomHex(4))
	if err := os.Rename(dir, gone); err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("fs: remove upload: %w", err)
	}
	if err := syncDir(parent); err != nil {
		return err
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("fs: remove upload: %w", err)
	}
	return nil
}

// CommitUpload verifies the session against d, renames its data file into
// the blob store (or drops it if the blob is already there) and links the
// blob into repo.
//
// A crash between those steps must not cost the client its upload: before
// the data file moves, the verified digest is recorded in the session
// (fileCommitted), and the session is removed last. A session whose data
// file is gone but which records a digest whose blob is stored is a commit
// interrupted after the move: StatUpload reports it with the blob's size,
// and CommitUpload with the recorded digest completes it (link, remove).
func (s *Store) CommitUpload(ctx context.Context, repo, id string, d digest.Digest) (_ storage.BlobInfo, err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	dir, err := s.uploadDir(repo, id)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	rdir, _ := s.repoDir(repo, nil)
	mu := s.uploadLock(id)
	mu.Lock()
	defer mu.Unlock()

	dataPath := filepath.Join(dir, fileData)
	size, err := s.settleSession(ctx, dir)
	if err != nil {
		if isNotExist(err) {
			return s.resumeCommit(repo, id, dir, rdir, d)
		}
		return storage.BlobInfo{}, fmt.Errorf("fs: commit upload: %w", err)
	}
	g, err := parseDigest(d)
	if err != nil {
		if errors.Is(err, storage.ErrUnsupportedDigest) {
			return storage.BlobInfo{}, err // the session stays: the client may retry
		}
		if rerr := removeSession(dir); rerr != nil {
			return storage.BlobInfo{}, rerr
		}
		return storage.BlobInfo{}, fmt.Errorf("%w: %w", err, storage.ErrDigestMismatch)
	}
	got, err := s.sessionDigest(ctx, dir, g.Alg, size)
	if err != nil {
		if isNotExist(err) {
			return storage.BlobInfo{}, uploadUnknown(repo, id)
		}
		return storage.BlobInfo{}, err
	}
	if got != d {
		if rerr := removeSession(dir); rerr != nil {
			return storage.BlobInfo{}, rerr
		}
		return storage.BlobInfo{}, fmt.Errorf("fs: upload %s: content is %s, not %s: %w", id, got, d, storage.ErrDigestMismatch)
	}

	blob := s.blobPath(g)
	// Already stored: mark it used, so garbage collection keeps it (gc.go).
	have, err := touch(blob)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	if !have {
		bdir := filepath.Dir(blob)
		if err := mkdirAll(bdir); err != nil {
			return storage.BlobInfo{}, err
		}
		// Appends do not sync: the data becomes durable here, before
		// anything refers to it.
		if err := syncFile(dataPath); err != nil {
			return storage.BlobInfo{}, err
		}
		// Recorded before the data leaves the session, so that a retry
		// after a crash past the move can finish the commit.
		if err := s.writeFileAtomic(filepath.Join(dir, fileCommitted), []byte(d)); err != nil {
			return storage.BlobInfo{}, err
		}
		// The data file is synced (above); the rename is atomic. A
		// concurrent commit of the same content may win the race: same bytes.
		if err := os.Chmod(dataPath, 0o644); err != nil {
			return storage.BlobInfo{}, fmt.Errorf("fs: commit upload: %w", err)
		}
		// Its time is the commit, not the last append (which may be older
		// than the grace period of garbage collection, gc.go).
		if _, err := touch(dataPath); err != nil {
			return storage.BlobInfo{}, err
		}
		if err := s.commitFault("move"); err != nil {
			return storage.BlobInfo{}, err
		}
		if err := os.Rename(dataPath, blob); err != nil {
			return storage.BlobInfo{}, fmt.Errorf("fs: commit upload: %w", err)
		}
		if err := syncDir(bdir); err != nil {
			return storage.BlobInfo{}, err
		}
	}
	return s.finishCommit(dir, rdir, g, size)
}

// finishCommit links the stored blob g into the repository at rdir and
// removes the session.
func (s *Store) finishCommit(dir, rdir string, g oci.Digest, size int64) (storage.BlobInfo, error) {
	if err := s.commitFault("link"); err != nil {
		return storage.BlobInfo{}, err
	}
	if err := s.writeOrTouch(blobLinkPath(rdir, g), []byte(g.D)); err != nil {
		return storage.BlobInfo{}, err
	}
	if err := s.commitFault("remove"); err != nil {
		return storage.BlobInfo{}, err
	}
	if err := removeSession(dir); err != nil {
		return storage.BlobInfo{}, err
	}
	return storage.BlobInfo{Digest: g.D, Size: size}, nil
}

// committedBlob returns the digest recorded in the session dir by a commit
// (see CommitUpload) and the path of its blob; ok is false when none is
// recorded.
func (s *Store) committedBlob(dir string) (g oci.Digest, blob string, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, fileCommitted))
	if err != nil {
		return oci.Digest{}, "", false
	}
	g, err = parseDigest(digest.Digest(strings.TrimSpace(string(b))))
	if err != nil {
		return oci.Digest{}, "", false
	}
	return g, s.blobPath(g), true
}

// resumeCommit completes a commit that was interrupted after the session's
// data moved into the blob store: the client retries with the digest the
// content was verified against.
func (s *Store) resumeCommit(repo, id, dir, rdir string, d digest.Digest) (storage.BlobInfo, error) {
	g, blob, ok := s.committedBlob(dir)
	if !ok {
		return storage.BlobInfo{}, uploadUnknown(repo, id)
	}
	if g.D != d {
		if err := removeSession(dir); err != nil {
			return storage.BlobInfo{}, err
		}
		return storage.BlobInfo{}, fmt.Errorf("fs: upload %s: content is %s, not %s: %w", id, g.D, d, storage.ErrDigestMismatch)
	}
	// Mark it used again before linking it (gc.go). If garbage collection
	// has removed it meanwhile (unlinked longer than its grace period), the
	// upload is lost.
	found, err := touch(blob)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	if !found {
		if err := removeSession(dir); err != nil {
			return storage.BlobInfo{}, err
		}
		return storage.BlobInfo{}, uploadUnknown(repo, id)
	}
	fi, err := os.Stat(blob)
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("fs: commit upload: %w", err)
	}
	return s.finishCommit(dir, rdir, g, fi.Size())
}

// AbortUpload removes the session.
func (s *Store) AbortUpload(ctx context.Context, repo, id string) (err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := s.uploadDir(repo, id)
	if err != nil {
		return err
	}
	mu := s.uploadLock(id)
	mu.Lock()
	defer mu.Unlock()
	ok, err := exists(dir)
	if err != nil {
		return err
	}
	if !ok {
		return uploadUnknown(repo, id)
	}
	return removeSession(dir)
}

// PurgeUploads removes the sessions started before olderThan, and leftovers
// of interrupted session creations and removals last touched before it.
func (s *Store) PurgeUploads(ctx context.Context, olderThan time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.walkRepos(ctx, func(_, dir string, entries []os.DirEntry) error {
		if !hasEntry(entries, dirUploads) {
			return nil
		}
		udir := filepath.Join(dir, dirUploads)
		sessions, err := os.ReadDir(udir)
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return fmt.Errorf("fs: purge uploads: %w", err)
		}
		for _, e := range sessions {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := e.Name()
			path := filepath.Join(udir, name)
			switch {
			case backend.ValidUploadID(name):
				removed, err := s.purgeSession(path, name, olderThan)
				if err != nil {
					return err
				}
				if removed {
					n++
				}
			case strings.HasPrefix(name, tmpPrefix) || strings.HasPrefix(name, delPrefix):
				if info, err := e.Info(); err == nil && info.ModTime().Before(olderThan) {
					os.RemoveAll(path)
				}
			}
		}
		return nil
	})
	return n, err
}

func (s *Store) purgeSession(dir, id string, olderThan time.Time) (bool, error) {
	mu := s.uploadLock(id)
	mu.Lock()
	defer mu.Unlock()
	started, err := readStartedAt(dir)
	if err != nil {
		if isNotExist(err) {
			return false, nil // gone meanwhile
		}
		return false, err
	}
	if !started.Before(olderThan) {
		return false, nil
	}
	if err := removeSession(dir); err != nil {
		return false, err
	}
	return true, nil
}
