package auth

import (
	"strings"
	"testing"
)

func FuzzParseFile(f *testing.F) {
	f.Add([]byte("tokens:\n  - {name: ci, role: operator, sha256: " + HashToken("msk_0123456789abcdef") + "}\n"))
	f.Add([]byte("users:\n  - {name: alice, role: viewer, bcrypt: $2a$10$abcdefghijklmnopqrstuv}\n"))
	f.Add([]byte("tokens: [\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := ParseFile(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "auth file: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		// What parses validates, and builds an authenticator.
		if err := file.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		if _, err := New(Config{File: file}, nil, nil); err != nil {
			t.Fatalf("parsed file refused: %v", err)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	f.Add("msk_0123456789abcdef0123456789")
	f.Add("  msk_0123456789abcdef\n")
	f.Add("short")
	f.Add("msk_with space inside 0123456789")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if len(tok) < 16 || len(tok) > 512 || strings.ContainsAny(tok, " \t\r\n") {
			t.Fatalf("accepted %q", tok)
		}
		if len(HashToken(tok)) != 64 {
			t.Fatal("hash length")
		}
	})
}
