package forward

import "errors"

// This file holds the PROXY protocol API the engines call until
// proxyproto.go (the encoder, built on its own branch) lands and replaces
// it: delete this file then. --proxy-protocol is not offered until then,
// so nothing reaches these.

// ProxyVersion is the PROXY protocol version sent to the backend; 0 sends none.
type ProxyVersion uint8

// The versions.
const (
	ProxyNone ProxyVersion = 0
	ProxyV1   ProxyVersion = 1
	ProxyV2   ProxyVersion = 2
)

// MaxProxyHeader is the largest header.
const MaxProxyHeader = 108

var errNoProxyProtocol = errors.New("the PROXY protocol is not built in yet")

// ProxyHeaderFor is not built yet.
func ProxyHeaderFor(dst []byte, v ProxyVersion, clientFD int) ([]byte, error) {
	return dst, errNoProxyProtocol
}

// WriteProxyHeader is not built yet.
func WriteProxyHeader(fd int, hdr []byte) error { return errNoProxyProtocol }

// ParseProxyVersion is not built yet.
func ParseProxyVersion(s string) (ProxyVersion, error) { return 0, errNoProxyProtocol }
