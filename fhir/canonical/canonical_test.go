package canonical

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.0", 1},
		{"1.0", "1.0.0", 0},
		{"1.0.0-beta", "1.0.0", -1},
		{"1.0.0+build", "1.0.0", 0},
		{"", "0.1", -1},
		{"2", "10", -1},
		{"1.a", "1.1", 1},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
