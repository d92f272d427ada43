# @summary Deploys StackStorm packs with packsync: the binary, the site config and either
#   the agent service or a converging `packsync apply` at every Puppet run.
#
# The site config, /etc/packsync/packsync.toml, is written from the parameters below; see the
# packsync README for every key. Connection URLs, which hold passwords, go to files of their
# own (mode 0640, the group the service user's in `service` mode) that the config names with `url_file`, so Puppet shows config diffs
# without showing a password.
#
# @example A host converged at every Puppet run
#   class { 'packsync':
#     stackstorm => { 'st2_python' => '/opt/stackstorm/st2/bin/python' },
#     mirror     => { 'path' => '/srv/wheels' },
#     packs      => [
#       { 'name' => 'clush', 'source' => '/srv/git/clush.git', 'version' => '>=1.8, <2' },
#       { 'name' => 'slurm', 'source' => '/srv/git/slurm.git', 'ref' => 'v2.3.0' },
#     ],
#   }
#
# @param mode
#   `exec`: every Puppet run applies the site config when `packsync plan` finds changes, and
#   reports them as Puppet changes (the default). `service`: the agent (`packsync run`) keeps
#   the host converged between Puppet runs, reloading the config when it changes. `none`: the
#   binary and the config only.
# @param package_source
#   The packsync Debian package (`packaging/deb/build`) to install with dpkg, a local path:
#   the binary at /usr/bin/packsync (set `binary_path`), the units, the `packsync` user.
# @param binary_source
#   Where Puppet copies the packsync binary from (`puppet:///modules/site/packsync`, a local
#   path). `undef`: the binary is installed by other means, a package.
# @param binary_path
#   Where the binary is.
# @param config_dir
#   The folder of `packsync.toml` and of the URL files.
# @param state_dir
#   `[agent] state_dir`: releases, virtualenvs, the lock and the caches.
# @param agent
#   More of `[agent]`: `host`, `prune`, `metrics_listen`.
# @param stackstorm
#   `[stackstorm]`: `packs_dir`, `virtualenvs_dir`, `python`, `st2_python`, `register`, ...
# @param mirror
#   `[mirror]`: `path` (the wheel folder), `installer`.
# @param packs
#   The `[[pack]]` entries: `name`, `source`, `ref` or `version`, `subdir`, `enabled`, `config`.
# @param runners
#   The `[[runner]]` entries: `name`, `version`, `source`, `ref`.
# @param state
#   `[state]` without its URL: `database`, `collection_prefix`, `timeout`. Only used with
#   `state_url`; without it, the state is kept in `state_dir`.
# @param state_url
#   The MongoDB connection string, written to `<config_dir>/state-url` (mode 0640).
# @param messaging
#   `[messaging]` without its URL: `exchange`, `queue_limit`. Only used with `messaging_url`.
# @param messaging_url
#   The RabbitMQ URL the agent publishes events to, written to `<config_dir>/messaging-url`.
# @param watch
#   `[watch]`: `debounce`, `poll`.
# @param run_schedule
#   `[schedule]` (`schedule` is a Puppet metaparameter): `cron`, `splay`, `retry`.
# @param fleet
#   `[fleet]`, the nodes of a StackStorm HA site deploying as one: `name`, `hosts`, `quorum`,
#   `prepare_timeout`, `waves`, `lease_ttl`. Needs `state_url`.
# @param apply_timeout
#   Seconds a `packsync apply` may take in `exec` mode: the first one builds every virtualenv.
# @param wait_for_lock
#   Seconds `packsync apply` waits for a run in progress (the agent, a timer) to finish.
# @param service_name
#   The agent's systemd unit, in `service` mode.
# @param unit_dir
#   Where the unit's drop-in goes, in `service` mode.
# @param service_user
#   The user the agent's unit runs as, in `service` mode: made a system user here (the package
#   makes it too), and the group of the config and URL files, which it must read.
class packsync (
  Enum['exec', 'service', 'none'] $mode = 'exec',
  Optional[String[1]] $package_source = undef,
  Optional[String[1]] $binary_source = undef,
  Packsync::Path $binary_path = '/usr/local/bin/packsync',
  Packsync::Path $config_dir = '/etc/packsync',
  Packsync::Path $state_dir = '/var/lib/packsync',
  Hash[String[1], Data] $agent = {},
  Hash[String[1], Data] $stackstorm = {},
  Hash[String[1], Data] $mirror = {},
  Array[Hash[String[1], Data]] $packs = [],
  Array[Hash[String[1], Data]] $runners = [],
  Hash[String[1], Data] $state = {},
  Optional[Variant[String[1], Sensitive[String[1]]]] $state_url = undef,
  Hash[String[1], Data] $messaging = {},
  Optional[Variant[String[1], Sensitive[String[1]]]] $messaging_url = undef,
  Hash[String[1], Data] $watch = {},
  Hash[String[1], Data] $run_schedule = {},
  Hash[String[1], Data] $fleet = {},
  Integer[1] $apply_timeout = 3600,
  Integer[0] $wait_for_lock = 900,
  String[1] $service_name = 'packsync',
  Packsync::Path $unit_dir = '/etc/systemd/system',
  String[1] $service_user = 'packsync',
) {
  $config_path = "${config_dir}/packsync.toml"

  if $package_source {
    package { 'packsync':
      ensure   => installed,
      provider => 'dpkg',
      source   => $package_source,
      before   => File[$config_dir],
    }
  }

  # In `service` mode the agent runs as its own user: it reads the config through its group.
  if $mode == 'service' {
    group { $service_user:
      ensure => present,
      system => true,
    }
    # Only that it exists: the package (or the site) says the rest.
    user { $service_user:
      ensure => present,
      system => true,
      gid    => $service_user,
    }
    $config_group = $service_user
    $config_requires = [Group[$service_user]]
  } else {
    $config_group = undef
    $config_requires = []
  }
  $state_url_path = "${config_dir}/state-url"
  $messaging_url_path = "${config_dir}/messaging-url"

  if $binary_source {
    file { $binary_path:
      ensure => file,
      source => $binary_source,
      mode   => '0755',
      before => File[$config_path],
    }
  }

  file { $config_dir:
    ensure  => directory,
    group   => $config_group,
    mode    => '0750',
    require => $config_requires,
  }

  $state_section = $state_url ? {
    undef   => {},
    default => { 'state' => $state + { 'url_file' => $state_url_path } },
  }
  $messaging_section = $messaging_url ? {
    undef   => {},
    default => { 'messaging' => $messaging + { 'url_file' => $messaging_url_path } },
  }
  $optional_sections = {
    'watch'    => $watch,
    'schedule' => $run_schedule,
    'fleet'    => $fleet,
  }.filter |$name, $section| {
    !$section.empty
  }
  $entries = { 'pack' => $packs, 'runner' => $runners }.filter |$name, $list| { !$list.empty }
  $config = {
    'agent'      => { 'state_dir' => $state_dir } + $agent,
    'stackstorm' => $stackstorm,
    'mirror'     => $mirror,
  } + $state_section + $messaging_section + $optional_sections + $entries

  $url_files = { $state_url_path => $state_url, $messaging_url_path => $messaging_url }
  $url_files.each |$path, $url| {
    if $url =~ Undef {
      file { $path:
        ensure => absent,
      }
    } else {
      file { $path:
        ensure  => file,
        content => Sensitive("${url.unwrap}\n"),
        group   => $config_group,
        mode    => '0640',
        before  => File[$config_path],
      }
    }
  }

  file { $config_path:
    ensure  => file,
    content => packsync::to_toml($config),
    group   => $config_group,
    mode    => '0640',
  }

  case $mode {
    'exec': {
      $packsync = "${binary_path} --config ${config_path}"
      # `plan` exits 0 when the host is converged, so the apply runs (and Puppet reports a
      # change) only when a pack, a runner, the mirror or the config asks for one. Exit 2 of
      # `apply --detailed-exitcodes` is "changes applied"; 4 and 6 (failures) fail the resource.
      exec { 'packsync apply':
        command   => "${packsync} apply --detailed-exitcodes --wait-for-lock ${wait_for_lock}",
        unless    => "${packsync} plan --detailed-exitcodes",
        returns   => [0, 2],
        timeout   => $apply_timeout,
        logoutput => true,
        require   => File[$config_path],
      }
    }
    'service': {
      # The unit of packaging/systemd is installed with the binary; this drop-in points it at
      # the paths of this class, which its hardening must let the agent write.
      $writable = [$state_dir] + ['packs_dir', 'virtualenvs_dir', 'configs_dir'].filter |$key| {
        $key in $stackstorm
      }.map |$key| { $stackstorm[$key] }
      file { "${unit_dir}/${service_name}.service.d":
        ensure => directory,
      }
      file { "${unit_dir}/${service_name}.service.d/puppet.conf":
        ensure  => file,
        content => @("UNIT"),
          # Managed by Puppet (class packsync).
          [Service]
          ExecStart=
          ExecStart=${binary_path} --config ${config_path} run
          ReadWritePaths=${writable.join(' ')}
          | UNIT
      }
      # The agent watches its config: a config change needs no restart. A new binary does.
      $binary = $binary_source ? {
        undef   => [],
        default => [File[$binary_path]],
      }
      $package = $package_source ? {
        undef   => [],
        default => [Package['packsync']],
      }
      service { $service_name:
        ensure    => running,
        enable    => true,
        subscribe => [File["${unit_dir}/${service_name}.service.d/puppet.conf"]] + $binary + $package,
        require   => File[$config_path],
      }
    }
    default: {}
  }
}
