// The PKCS #11 interface, from the system's p11-kit headers (Debian: libp11-kit-dev).
#include <p11-kit/pkcs11.h>
