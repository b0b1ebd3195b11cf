/// A credential. Its description is always redacted, so string interpolation into a log
/// line, error or metric label can never reveal it; only ``reveal()`` gives the bytes.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    private let value: String

    public init(_ value: String) { self.value = value }

    /// The plaintext, for the one place that must send it (an upstream header).
    public func reveal() -> String { value }

    public var isEmpty: Bool { value.isEmpty }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
