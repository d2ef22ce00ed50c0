// Package collateral is where kura's TEE verifiers get vendor collateral:
// AMD KDS certificates and CRLs, Intel PCS TCB info, QE identity, CRLs and
// root certificates, each named by the URL its vendor serves it at.
//
// [New] builds the [attestation.Getter] kura uses. It looks, in order, in a
// bounded in-memory cache, an on-disk cache [Dir], zero or more read-only
// offline bundle directories, and finally the vendor's server through
// [Online], but only when [Config.Online] is set: by default kura never
// touches the network. What is fetched online is written to the disk cache.
// When nothing has the URL, the error wraps
// [attestation.ErrCollateralUnavailable] and names every place looked.
//
// # Security model
//
// Collateral is public and signed by its vendor; verifiers check it up to a
// pinned vendor root. This package does not check signatures: a poisoned
// cache or bundle can make verification fail, not pass. It does defend the
// file system: URLs are mapped to paths that cannot leave the directory,
// [Import] refuses symbolic links, special files and files over 1 MiB, and
// every body read from disk or the network is capped at 1 MiB.
//
// # Directory layout
//
// A [Dir], whether cache or offline bundle, holds one file per URL at
//
//	<dir>/<host>/<path segment>/.../<last segment>[@<query>]
//
// next to an optional <file>.header.json holding the response headers worth
// keeping (Content-Type and every *-Issuer-Chain header, which is how Intel
// PCS sends issuer chains) as a JSON object from canonical header name to a
// list of values. For example:
//
//	kdsintf.amd.com/vcek/v1/Milan/cert_chain
//	kdsintf.amd.com/vcek/v1/Milan/<hwid>@blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115
//	api.trustedservices.intel.com/tdx/certification/v4/tcb@fmspc=50806f000000
//	api.trustedservices.intel.com/tdx/certification/v4/tcb@fmspc=50806f000000.header.json
//	api.trustedservices.intel.com/sgx/certification/v4/pckcrl@ca=platform&encoding=der
//	certificates.trustedservices.intel.com/IntelSGXRootCA.der
//
// The mapping from URL to path is:
//
//   - The scheme must be https or http (both map to the same path); the URL
//     must have a host and a non-empty path, and no user info or fragment.
//   - The host is lower-cased; a port stays, escaped (127.0.0.1%3A8443).
//   - The path is percent-decoded and split at '/'. Empty, "." and ".."
//     segments are refused, so no path can leave the directory.
//   - In the host and each segment, bytes other than A-Z a-z 0-9 '-' '_' '.'
//     are written as '%' and two upper-case hex digits, and so is a leading
//     '.': no name is hidden, and '@' and '%' always appear escaped.
//   - A non-empty query is appended to the last segment after '@', escaped
//     the same way except that '=' and '&' also stay as they are.
//   - A name longer than 240 bytes, or a last name ending in ".header.json",
//     is refused.
//
// Files and directories whose names start with '.' are not collateral: Put
// uses them for temporary files and Import skips them.
package collateral
