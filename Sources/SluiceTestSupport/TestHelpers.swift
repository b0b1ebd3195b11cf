import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SluiceHTTP2

/// A scratch directory removed by ``remove()``.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "sluice-test") throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        self.path = base.path
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Deletes the directory and everything in it.
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A self-signed certificate for 127.0.0.1/localhost in a scratch directory; clients
/// trust it through `caFile`.
public struct TestCertificate: Sendable {
    public let directory: TemporaryDirectory
    public var certificatePath: String { directory.file("cert.pem") }
    public var privateKeyPath: String { directory.file("key.pem") }

    public init(subjectAltNames: String = "DNS:localhost,IP:127.0.0.1,IP:::1") throws {
        directory = try TemporaryDirectory(prefix: "sluice-cert")
        try SelfSignedCertificate.generate(
            certificatePath: directory.file("cert.pem"), privateKeyPath: directory.file("key.pem"),
            subjectAltNames: subjectAltNames)
    }

    public var serverConfiguration: TLSServerConfiguration {
        TLSServerConfiguration(certificateChainFile: certificatePath, privateKeyFile: privateKeyPath)
    }
}

/// An upstream delegate that gathers a whole response and reports it through a promise.
public final class CollectingDelegate: UpstreamResponseDelegate, @unchecked Sendable {
    // Only touched on the event loop the call was started on (the delegate contract).
    public private(set) var head: UpstreamResponseHead?
    public private(set) var body: [UInt8] = []
    public private(set) var chunkCount = 0
    public weak var call: UpstreamCall?
    private let promise: EventLoopPromise<Result<(UpstreamResponseHead, [UInt8]), UpstreamError>>

    public init(eventLoop: any EventLoop) {
        promise = eventLoop.makePromise()
    }

    public var result: EventLoopFuture<Result<(UpstreamResponseHead, [UInt8]), UpstreamError>> { promise.futureResult }

    public func upstreamReceivedHead(_ head: UpstreamResponseHead) { self.head = head }

    public func upstreamReceivedBody(_ chunk: ByteBuffer) {
        chunkCount += 1
        body.append(contentsOf: chunk.readableBytesView)
        call?.consumed(chunk.readableBytes)
    }

    public func upstreamFinished() {
        promise.succeed(.success((head!, body)))
    }

    public func upstreamFailed(_ error: UpstreamError) {
        promise.succeed(.failure(error))
    }
}
