#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed file operation in the state directory, with the path and the system's reason.
public struct StateFileError: Error, CustomStringConvertible {
    public var message: String
    /// The `errno` value (ENOSPC, EROFS, EIO, …).
    public var code: Int32

    init(_ operation: String, _ path: String, code: Int32 = errno) {
        self.code = code
        message = "\(operation) \(path): \(String(cString: strerror(code)))"
    }

    public var description: String { message }
}

/// The few file operations the agent's state needs, each durable when it returns: a
/// replaced file is either wholly old or wholly new after a crash, never torn.
enum DurableFiles {
    /// Writes `bytes` to a temporary file beside `path`, flushes it to disk, renames it over
    /// `path` and flushes the directory, so that a crash at any point leaves the old or the
    /// new contents.
    static func replace(_ path: String, with bytes: [UInt8]) throws(StateFileError) {
        let temporary = "\(path).tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StateFileError("cannot create", temporary) }
        do throws(StateFileError) {
            try writeAll(descriptor, bytes, path: temporary)
            guard fsync(descriptor) == 0 else { throw StateFileError("cannot flush", temporary) }
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let error = StateFileError("cannot rename onto", path)
            unlink(temporary)
            throw error
        }
        try syncDirectory(of: path)
    }

    /// The whole file, or nil when it does not exist. Larger than `limit` is an error: state
    /// files are small, and a huge one is damage, not data.
    static func read(_ path: String, limit: Int) throws(StateFileError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw StateFileError("cannot open", path)
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw StateFileError("cannot read", path) }
            if count == 0 { return bytes }
            guard bytes.count + count <= limit else { throw StateFileError("refusing to read", path, code: EFBIG) }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Removes `path` (already gone is fine) and flushes the directory entry.
    static func remove(_ path: String) throws(StateFileError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw StateFileError("cannot remove", path) }
        try syncDirectory(of: path)
    }

    /// Creates `path` and its parents (mode 0700): the state directory holds policy and
    /// usage no other user needs to read.
    static func makeDirectory(_ path: String) throws(StateFileError) {
        var built = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            built += "/\(component)"
            if mkdir(built, 0o700) != 0, errno != EEXIST { throw StateFileError("cannot create directory", built) }
        }
    }

    /// Names of the entries in `directory`.
    static func list(_ directory: String) throws(StateFileError) -> [String] {
        guard let handle = opendir(directory) else { throw StateFileError("cannot list", directory) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws(StateFileError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { throw StateFileError("cannot write", path) }
            offset += written
        }
    }

    static func syncDirectory(of path: String) throws(StateFileError) {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let name = directory.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : directory
        let descriptor = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StateFileError("cannot open directory", name) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw StateFileError("cannot flush directory", name) }
    }
}

/// `read(2)`, named apart from the instance methods called `read` in scope above.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// A file opened for appending, one `write` per record so that a record is whole or
/// absent after the process dies.
final class AppendFile {
    let path: String
    private let descriptor: Int32

    init(path: String) throws(StateFileError) {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StateFileError("cannot open", path) }
    }

    deinit { close(descriptor) }

    func append(_ bytes: [UInt8]) throws(StateFileError) {
        try DurableFiles.writeAll(descriptor, bytes, path: path)
    }

    func sync() throws(StateFileError) {
        guard fsync(descriptor) == 0 else { throw StateFileError("cannot flush", path) }
    }
}
