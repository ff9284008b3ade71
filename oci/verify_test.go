package oci_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"

	"github.com/ferry-oss/ferry/oci"
)

func TestVerifyReader(t *testing.T) {
	data := []byte("hello, ferry")
	d := descriptor.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	tests := []struct {
		name string
		in   []byte
		d    descriptor.Descriptor
		err  error
	}{
		{"ok", data, d, nil},
		{"short", data[:5], d, oci.ErrSizeMismatch},
		{"long", append(append([]byte{}, data...), '!'), d, oci.ErrSizeMismatch},
		{"flipped", []byte("hello, ferrY"), d, oci.ErrDigestMismatch},
		{"empty ok", nil, descriptor.Descriptor{Digest: digest.FromBytes(nil)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := io.ReadAll(oci.VerifyReader(bytes.NewReader(tt.in), tt.d))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err == nil && !bytes.Equal(got, tt.in) {
				t.Fatal("bytes changed")
			}
		})
	}
}
