# frozen_string_literal: true

# Unit tests for the delivery rules the build puts into every Rails app (templates/delivery.rb,
# .smtp-ca/delivery.rb in the app): which settings get the bundle and peer, what is left as the
# app wrote it, the hook that applies them at delivery, and that nothing raises into the app.
# The end-to-end runs, with booted Rails apps of every shape and a real SMTP server, are
# tests/e2e/test_app_shapes.py's.
#
#   ruby tests/ruby/test_delivery.rb

require 'minitest/autorun'
require 'open3'
require 'rbconfig'
require 'tmpdir'
require_relative '../../templates/delivery'

# Helpers: a bundle file that exists, and the environment a dyno gives.
module DeliveryTestHelpers
  PEER = OpenSSL::SSL::VERIFY_PEER

  def setup
    @dir = Dir.mktmpdir
    @bundle = File.join(@dir, 'ca-bundle.pem')
    File.write(@bundle, "-----BEGIN CERTIFICATE-----\n")
    @env = { 'SMTP_CA_FILE' => @bundle }
  end

  def teardown
    FileUtils.remove_entry(@dir)
  end

  def complete(settings, env = @env)
    SmtpCaDelivery.complete(settings, env, File.join(@dir, 'beside.pem'))
  end
end

# Which settings get what.
class TestDeliveryRules < Minitest::Test
  include DeliveryTestHelpers

  def test_settings_that_name_no_ca_file_get_the_bundle_and_peer
    completion = complete({ address: 'smtp.example.com', port: 587 })
    assert_equal({ address: 'smtp.example.com', port: 587, ca_file: @bundle,
                   openssl_verify_mode: PEER }, completion.settings)
    assert_equal [:added, :ca_file, @bundle, 'SMTP_CA_FILE'], completion.ca.to_a
    assert_equal [:added, :openssl_verify_mode, PEER, 'SMTP_CA_VERIFY_DEFAULT'],
                 completion.verify_mode.to_a
  end

  def test_without_smtp_ca_file_the_bundle_beside_the_file_is_used
    beside = File.join(@dir, 'beside.pem')
    File.write(beside, '')
    completion = complete({}, {})
    assert_equal beside, completion.settings[:ca_file]
    assert_equal :bundle, completion.ca.source
    assert_equal File.expand_path('../../templates/ca-bundle.pem', __dir__), SmtpCaDelivery::BUNDLE
  end

  def test_a_file_that_does_not_exist_is_not_filled_in
    completion = complete({}, { 'SMTP_CA_FILE' => File.join(@dir, 'gone.pem') })
    refute completion.settings.key?(:ca_file)
    assert_equal :missing, completion.ca.action
    assert_equal :missing, complete({}, { 'SMTP_CA_FILE' => "bad\0path" }).ca.action
  end

  def test_settings_that_name_a_ca_file_or_a_ca_path_are_left_as_the_app_wrote_them
    [{ ca_file: '/app/gd.crt' }, { 'ca_file' => '/app/gd.crt' }, { ca_path: '/etc/ssl/certs' },
     { ca_file: '' }].each do |settings|
      named = settings.merge(openssl_verify_mode: 'peer')
      assert_same named, complete(named).settings
      completion = complete(settings)
      assert_equal :kept, completion.ca.action
    end
    assert_equal :ca_path, complete({ ca_path: '/etc/ssl/certs' }).ca.key
  end

  def test_nil_and_false_name_nothing_as_the_mail_gem_reads_them
    completion = complete({ ca_file: nil, ca_path: false, openssl_verify_mode: nil })
    assert_equal @bundle, completion.settings[:ca_file]
    assert_equal PEER, completion.settings[:openssl_verify_mode]
  end

  def test_a_verify_mode_the_app_names_wins_none_included
    ['none', 'peer', OpenSSL::SSL::VERIFY_NONE, 'client_once'].each do |mode|
      completion = complete({ openssl_verify_mode: mode })
      assert_equal mode, completion.settings[:openssl_verify_mode]
      assert_equal [:kept, mode], [completion.verify_mode.action, completion.verify_mode.value]
    end
    assert_equal 'none', complete({ 'openssl_verify_mode' => 'none' }).verify_mode.value
  end

  def test_smtp_ca_verify_default_off_leaves_an_unset_mode_unset
    [' off', 'OFF', 'Off'].each do |off|
      completion = complete({}, @env.merge('SMTP_CA_VERIFY_DEFAULT' => off))
      refute completion.settings.key?(:openssl_verify_mode)
      assert_equal [:unset, nil], [completion.verify_mode.action, completion.verify_mode.value]
      assert_equal @bundle, completion.settings[:ca_file] # the bundle all the same
    end
  end

  def test_any_other_value_of_smtp_ca_verify_default_means_peer
    ['peer', 'PEER', '', 'none', 'of'].each do |value|
      env = @env.merge('SMTP_CA_VERIFY_DEFAULT' => value)
      assert_equal PEER, complete({}, env).settings[:openssl_verify_mode], value
    end
    assert_nil SmtpCaDelivery.unknown_verify_default('SMTP_CA_VERIFY_DEFAULT' => 'Off')
    assert_nil SmtpCaDelivery.unknown_verify_default({})
    assert_equal 'none', SmtpCaDelivery.unknown_verify_default('SMTP_CA_VERIFY_DEFAULT' => 'none')
  end

  def test_the_apps_hash_is_never_changed
    settings = { address: 'smtp.example.com' }.freeze
    completion = complete(settings)
    assert_equal({ address: 'smtp.example.com' }, settings)
    refute_same settings, completion.settings
    named = { ca_file: '/app/gd.crt', openssl_verify_mode: 'none' }
    assert_same named, complete(named).settings # nothing to add: the same hash
  end
end

# The hook on Mail::SMTP, tried on a stand-in with the same shape (settings, deliver!).
class TestDeliveryHook < Minitest::Test
  include DeliveryTestHelpers

  def stand_in
    Class.new do
      attr_accessor :settings, :seen

      def initialize(settings)
        super()
        @settings = settings
      end

      def deliver!(mail)
        @seen = [mail, settings]
        :delivered
      end

      prepend SmtpCaDelivery::Hook
    end
  end

  def test_deliver_completes_the_settings_before_the_delivery_reads_them
    shared = { address: 'smtp.example.com' }
    smtp = stand_in.new(shared)
    result = with_env(@env) { smtp.deliver!(:message) }
    assert_equal :delivered, result
    assert_equal :message, smtp.seen[0]
    assert_equal @bundle, smtp.seen[1][:ca_file]
    assert_equal({ address: 'smtp.example.com' }, shared) # Mail.defaults' own hash, untouched
  end

  def test_settings_that_are_not_a_hash_are_left_alone
    smtp = stand_in.new(nil)
    assert_equal :delivered, smtp.deliver!(:message)
    assert_nil smtp.seen[1]
  end

  def test_a_fault_is_reported_once_and_the_delivery_goes_on
    broken = { address: 'x' }
    def broken.[](_key)
      raise KeyError, "broken\nsettings"
    end
    SmtpCaDelivery.instance_variable_set(:@reported, nil)
    _, stderr = capture_io do
      2.times { assert_equal :delivered, stand_in.new(broken).deliver!(:message) }
    end
    assert_equal 1, stderr.lines.size
    assert_match(/\Aheroku-buildpack-smtp-ca: completing the SMTP settings of a delivery failed /,
                 stderr)
    assert_includes stderr, '(KeyError: broken?settings)'
  end

  def with_env(values)
    saved = values.keys.to_h { |name| [name, ENV.fetch(name, nil)] }
    values.each { |name, value| ENV[name] = value }
    yield
  ensure
    saved.each { |name, value| ENV[name] = value }
  end
end

# Installing: safe without the mail gem, once with it. Run in a Ruby of its own, so that this
# process's Mail::SMTP is never hooked.
class TestDeliveryInstall < Minitest::Test
  DELIVERY = File.expand_path('../../templates/delivery.rb', __dir__)

  def ruby(code)
    Open3.capture3(RbConfig.ruby, '-e', code)
  end

  def test_without_the_mail_gem_it_loads_installs_nothing_and_says_nothing
    stdout, stderr, status = ruby(<<~RUBY)
      module Kernel
        alias_method :real_require, :require
        def require(name)
          raise LoadError, "cannot load such file -- \#{name}" if name == 'mail'

          real_require(name)
        end
      end
      require #{DELIVERY.inspect}
      p SmtpCaDelivery.install, SmtpCaDelivery.installed?
    RUBY
    assert status.success?, stderr
    assert_equal "false\nfalse\n", stdout
    assert_empty stderr
  end

  def test_with_the_mail_gem_it_hooks_mail_smtp_once
    stdout, stderr, status = ruby(<<~RUBY)
      require #{DELIVERY.inspect}
      p SmtpCaDelivery.installed?, SmtpCaDelivery.install, SmtpCaDelivery.install
      p Mail::SMTP.ancestors.count(SmtpCaDelivery::Hook)
    RUBY
    assert status.success?, stderr
    assert_equal "false\ntrue\ntrue\n1\n", stdout
  end
end
