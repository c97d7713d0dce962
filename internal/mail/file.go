package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// fileTransport writes each message to its own RFC 5322 .eml file, for development and
// for deployments where another program picks the files up.
type fileTransport struct {
	dir string
}

func newFileTransport(u *url.URL) (*fileTransport, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("parse mail URL: file:// names a local directory, not host %q", u.Host)
	}
	dir := u.Path
	if u.Opaque != "" { // file:relative/dir
		dir = u.Opaque
	}
	if dir == "" {
		return nil, errors.New("parse mail URL: file:// needs a directory, as in file:///var/mail/orgs")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create mail directory: %w", err)
	}
	return &fileTransport{dir: dir}, nil
}

// send writes msg to a temporary file and renames it into place, so that a reader
// watching the directory never sees a partial message. The temporary name starts with a
// dot and does not end in .eml, so such readers can skip it.
func (t *fileTransport) send(_ context.Context, msg *gomail.Msg, _ Email) error {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fmt.Errorf("name mail file: %w", err)
	}
	// Names sort by time; the random part keeps concurrent sends apart.
	name := time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(suffix[:]) + ".eml"

	f, err := os.CreateTemp(t.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("create mail file: %w", err)
	}
	tmp := f.Name()
	if _, err := msg.WriteTo(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write mail file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write mail file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(t.dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write mail file: %w", err)
	}
	return nil
}

func (t *fileTransport) close() error { return nil }

// logTransport hands each message to a function instead of sending it: the default for
// development, where the activation link in the log is all one needs.
type logTransport struct {
	logf func(Email)
}

func (t logTransport) send(_ context.Context, _ *gomail.Msg, e Email) error {
	t.logf(e)
	return nil
}

func (t logTransport) close() error { return nil }
