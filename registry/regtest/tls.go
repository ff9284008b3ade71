package regtest

// SelfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// and its key into dir, for servers under test.
func SelfSigned(dir string) (cert, key string, err error) { return selfSigned(dir) }
