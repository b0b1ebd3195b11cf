// swift-tools-version:6.1
import PackageDescription

// The policy decision microbenchmark (ordo-one/package-benchmark), kept out of the main
// package so CI does not build the benchmark harness. Run it with bench/policy.sh.
let package = Package(
    name: "sluice-policy-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "sluice-root"),
        .package(url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PolicyDecision",
            dependencies: [
                .product(name: "SluicePolicy", package: "sluice-root"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/PolicyDecision",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
