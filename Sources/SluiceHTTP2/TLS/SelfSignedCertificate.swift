internal import COpenSSL

/// A freshly generated P-256 key and a self-signed certificate for `localhost` and
/// `127.0.0.1`, written as PEM files. The mock provider uses it so that tests and demos
/// run over real, verified TLS: clients trust exactly this certificate as their CA file.
public enum SelfSignedCertificate {
    /// Generates the key pair and certificate and writes them to the given paths.
    /// - Parameter subjectAltNames: OpenSSL's SAN syntax; tests pass other names to check
    ///   that a certificate for a different host is refused.
    public static func generate(
        certificatePath: String, privateKeyPath: String, commonName: String = "sluice-mock-provider",
        subjectAltNames: String = "DNS:localhost,IP:127.0.0.1,IP:::1"
    ) throws(TLSError) {
        guard let key = COpenSSL_EC_P256_keygen() else {
            throw TLSError("key generation failed: \(drainOpenSSLErrors())")
        }
        defer { EVP_PKEY_free(key) }
        guard let certificate = X509_new() else { throw TLSError("X509_new failed") }
        defer { X509_free(certificate) }

        X509_set_version(certificate, 2)
        var serial: UInt64 = 0
        withUnsafeMutableBytes(of: &serial) { _ = RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), 8) }
        ASN1_INTEGER_set_uint64(X509_get_serialNumber(certificate), serial >> 1)
        X509_gmtime_adj(X509_getm_notBefore(certificate), -3600)
        X509_gmtime_adj(X509_getm_notAfter(certificate), 365 * 24 * 3600)
        X509_set_pubkey(certificate, key)
        let name = X509_get_subject_name(certificate)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0)
        X509_set_issuer_name(certificate, name)
        for (nid, value) in [
            (NID_subject_alt_name, subjectAltNames),
            (NID_basic_constraints, "critical,CA:TRUE"),
            (NID_key_usage, "critical,digitalSignature,keyCertSign"),
            (NID_ext_key_usage, "serverAuth"),
        ] {
            guard let extensionValue = X509V3_EXT_conf_nid(nil, nil, nid, value) else {
                throw TLSError("cannot build certificate extension: \(drainOpenSSLErrors())")
            }
            X509_add_ext(certificate, extensionValue, -1)
            X509_EXTENSION_free(extensionValue)
        }
        guard X509_sign(certificate, key, EVP_sha256()) > 0 else {
            throw TLSError("signing failed: \(drainOpenSSLErrors())")
        }

        guard let certificateFile = BIO_new_file(certificatePath, "w") else {
            throw TLSError("cannot write \(certificatePath)")
        }
        defer { BIO_free(certificateFile) }
        guard PEM_write_bio_X509(certificateFile, certificate) == 1 else {
            throw TLSError("cannot write \(certificatePath)")
        }
        guard let keyFile = BIO_new_file(privateKeyPath, "w") else { throw TLSError("cannot write \(privateKeyPath)") }
        defer { BIO_free(keyFile) }
        guard PEM_write_bio_PrivateKey(keyFile, key, nil, nil, 0, nil, nil) == 1 else {
            throw TLSError("cannot write \(privateKeyPath)")
        }
    }
}
