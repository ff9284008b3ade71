package registry

import "testing"

func TestRelatedHost(t *testing.T) {
	tests := []struct {
		reg, realm string
		want       bool
	}{
		{"registry-1.docker.io", "auth.docker.io", true},
		{"registry.gitlab.com", "gitlab.com", true},
		{"ghcr.io", "ghcr.io", true},
		{"harbor.example.com", "sso.example.com", true},
		{"harbor.example.com", "example.net", false},
		{"reg.co.uk", "evil.co.uk", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "localhost", false},
		{"10.0.0.1", "10.0.0.2", false},
		{"localhost", "localhost", true},
		{"myreg", "auth", false},
	}
	for _, tt := range tests {
		if got := relatedHost(tt.reg, tt.realm); got != tt.want {
			t.Errorf("relatedHost(%q, %q) = %v, want %v", tt.reg, tt.realm, got, tt.want)
		}
	}
}
