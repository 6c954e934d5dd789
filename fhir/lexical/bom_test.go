package lexical

import (
	"io"
	"strings"
	"testing"
)

func TestBOM(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		had      bool
	}{
		{"\xef\xbb\xbf{}", "{}", true},
		{"{}", "{}", false},
		{"\xef\xbb", "\xef\xbb", false},
		{"", "", false},
		{"a\xef\xbb\xbf", "a\xef\xbb\xbf", false},
	} {
		if got := string(TrimBOM([]byte(tt.in))); got != tt.want {
			t.Errorf("TrimBOM(%q) = %q, want %q", tt.in, got, tt.want)
		}
		r, had := SkipBOM(strings.NewReader(tt.in))
		got, _ := io.ReadAll(r)
		if string(got) != tt.want || had != tt.had {
			t.Errorf("SkipBOM(%q) = %q, %v, want %q, %v", tt.in, got, had, tt.want, tt.had)
		}
	}
}
