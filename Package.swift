// swift-tools-version:6.1
import PackageDescription

// Dependencies are deliberate: every one costs minutes of cold build in CI.
// The agent's data path needs NIO only; NIOHTTP2 is used solely by the mock
// provider, so the agent's HTTP/2 client is always tested against a peer we
// did not write.

// Executables link with lld so that their relative relocations are packed (DT_RELR: 40 KB
// where the default linker wrote 2.5 MB, read and kept resident at every start) and export
// no symbols (the static standard library's link arguments ask for --export-dynamic, which
// made the dynamic linker map 1 MB of symbol tables nothing looks up). See bench/README.md.
let leanExecutable: [LinkerSetting] = [
    .unsafeFlags(
        ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic"],
        .when(platforms: [.linux]))
]

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice-agent", targets: ["sluice-agent"]),
        .executable(name: "sluice-mock-provider", targets: ["sluice-mock-provider"]),
        .executable(name: "sluice-control", targets: ["sluice-control"]),
        .executable(name: "sluice", targets: ["sluice"]),
        // For the benchmark packages under bench/, which build these as dependencies.
        .library(name: "SluiceAPI", targets: ["SluiceAPI"]),
        .library(name: "SluicePolicy", targets: ["SluicePolicy"]),
        .library(name: "SluiceControl", targets: ["SluiceControl"]),
        .library(name: "SluiceAgent", targets: ["SluiceAgent"]),
        .library(name: "SluiceTestSupport", targets: ["SluiceTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // HMAC-SHA256 of virtual keys (and, for the control plane, Ed25519 bundle signatures).
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // The control plane's dashboard pages: logic-less templates that escape what they show.
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // C stays in these two thin targets; only SluiceHTTP2 imports them.
        .systemLibrary(
            name: "CNghttp2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"]), .brew(["nghttp2"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .target(
            name: "SluiceHTTP2",
            dependencies: [
                "CNghttp2",
                "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Records (audit lines, usage) to webhooks and OTLP collectors, batched and retried.
        .target(
            name: "SluiceExport",
            dependencies: [
                "SluiceHTTP2", "SluiceAPI", "SluicePolicy", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Pure: JSON scanning, OpenAI request/response handling, SSE, usage. No I/O.
        .target(
            name: "SluiceAPI",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // Pure: policy model, decisions, limits, catalog, prices and cost. No I/O, no clock of its own.
        .target(name: "SluicePolicy"),
        // Pure: sidecar injection (admission review to JSON patch), service-account token checks.
        .target(
            name: "SluiceKubernetes",
            dependencies: [
                "SluiceAPI", "SluicePolicy", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        // Pure: agent <-> control-plane messages (policy bundle, usage batch), signing.
        .target(
            name: "SluiceWire",
            dependencies: ["SluicePolicy", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The control plane: store (SQLite, PostgreSQL), admin and agent APIs, aggregation.
        .target(
            name: "SluiceControl",
            dependencies: [
                "SluiceWire", "SluicePolicy", "SluiceKubernetes", "SluiceHTTP2", "SluiceAPI", "SluiceExport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        .target(
            name: "SluiceAgent",
            dependencies: [
                "SluiceHTTP2", "SluiceAPI", "SluicePolicy", "SluiceWire", "SluiceKubernetes", "SluiceExport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "SluiceTestSupport",
            dependencies: [
                "SluiceHTTP2", "SluiceAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "sluice-agent",
            dependencies: [
                "SluiceAgent", "SluicePolicy", "SluiceExport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            linkerSettings: leanExecutable
        ),
        .executableTarget(
            name: "sluice-control",
            dependencies: [
                "SluiceControl", "SluicePolicy", "SluiceHTTP2", "SluiceExport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            linkerSettings: leanExecutable
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceWire", "SluicePolicy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            linkerSettings: leanExecutable
        ),
        .executableTarget(
            name: "sluice-mock-provider",
            dependencies: [
                "SluiceTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: leanExecutable
        ),
        .testTarget(name: "SluiceAPITests", dependencies: ["SluiceAPI"]),
        .testTarget(
            name: "SluicePolicyTests",
            dependencies: ["SluicePolicy", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "SluiceKubernetesTests",
            dependencies: [
                "SluiceKubernetes", "SluiceAPI", "SluiceTestSupport", .product(name: "Yams", package: "Yams"),
            ]),
        .testTarget(
            name: "SluiceControlTests",
            dependencies: [
                "SluiceControl", "SluiceWire", "SluiceTestSupport", "SluiceExport",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "SluiceWireTests",
            dependencies: ["SluiceWire", "SluicePolicy", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "SluiceHTTP2Tests",
            dependencies: ["SluiceHTTP2", "SluiceTestSupport"]
        ),
        .testTarget(
            name: "SluiceSyncTests",
            dependencies: [
                "SluiceAgent", "SluiceControl", "SluiceWire", "SluicePolicy", "SluiceHTTP2", "SluiceTestSupport",
                "SluiceKubernetes",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "SluiceAgentTests",
            dependencies: ["SluiceAgent", "SluiceTestSupport", "SluiceAPI", "SluicePolicy", "SluiceExport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
