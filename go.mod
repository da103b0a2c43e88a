module github.com/uring-socket-proxyd/uring-socket-proxyd

go 1.26.8

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	golang.org/x/sys v0.50.0
)
