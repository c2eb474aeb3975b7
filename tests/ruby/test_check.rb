# frozen_string_literal: true

# Unit tests for the pure parts of the dyno check (templates/check.rb): argument parsing,
# redaction, how certificates and names are shown, which settings are checked, where the CA
# file came from, what the delivery rules (templates/delivery.rb) did, the verify mode, and the
# messages built from a failed verification. The end-to-end runs, with a booted Rails app and a
# real SMTP server, are tests/e2e/test_dyno_check.py's.
#
#   ruby tests/ruby/test_check.rb

require 'fileutils'
require 'minitest/autorun'
require 'net/smtp' # the check loads it before any connection (App.load_net_smtp)
require 'openssl'
require 'tmpdir'
require_relative '../../templates/check'
require_relative '../../templates/delivery' # the rules the check applies as deliveries do

# Real certificates, made here with OpenSSL: a root, an intermediate, leaves.
module Certs
  module_function

  def key
    OpenSSL::PKey::EC.generate('prime256v1')
  end

  # rubocop:disable Metrics/ParameterLists -- a certificate has this many parts
  def make(subject, key:, issuer: nil, issuer_key: nil, authority: false, san: nil,
           not_before: Time.now - 3600, not_after: Time.now + (30 * 86_400))
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = rand(1 << 64)
    cert.subject = OpenSSL::X509::Name.parse(subject)
    cert.issuer = issuer ? issuer.subject : cert.subject
    cert.public_key = key
    cert.not_before = not_before
    cert.not_after = not_after
    extensions(cert, issuer || cert, authority, san)
    cert.sign(issuer_key || key, OpenSSL::Digest.new('SHA256'))
  end
  # rubocop:enable Metrics/ParameterLists

  def extensions(cert, issuer, is_ca, san)
    factory = OpenSSL::X509::ExtensionFactory.new(issuer, cert)
    cert.add_extension(factory.create_extension('basicConstraints', "CA:#{is_ca}", true))
    cert.add_extension(factory.create_extension('subjectAltName', san)) if san
  end
end

# A stand-in for the Probe: what OpenSSL had built when verification stopped.
FakeProbe = Struct.new(:ssl_socket, :chain, :failure) # rubocop:disable Lint/StructNewOverride -- the Probe's names

# Sources, sessions and contexts as the check builds them, without an app.
module CheckTestHelpers
  include SmtpCaDynoCheck

  def source(prefix = '', mastodon: true)
    SmtpCaDynoCheck::App::Source.new('ActionMailer::Base.smtp_settings', {}, prefix, mastodon)
  end

  # The delivery rules as the check applies them, to settings: hooked, or not (why: app).
  def rules(app, settings = {}, hooked: true)
    found = SmtpCaDynoCheck::DeliveryRules.new(app, hooked)
    found.apply(Struct.new(:settings).new(settings))
    found
  end

  def session(trust: nil, host: 'smtp.example.com', port: 587, implicit: false, from: source)
    SmtpCaDynoCheck::Session.new(from, trust, nil, host, port, implicit, :auto, 10.0)
  end

  # A context as net-smtp 0.2+ makes it: the default store, plus the ca_file given.
  def context(ca_file: nil, default_store: true)
    context = OpenSSL::SSL::SSLContext.new
    context.ca_file = ca_file
    context.cert_store = OpenSSL::X509::Store.new if default_store
    context
  end

  def with_env(values)
    saved = values.keys.to_h { |name| [name, ENV.fetch(name, nil)] }
    values.each { |name, value| ENV[name] = value }
    yield
  ensure
    saved.each { |name, value| ENV[name] = value }
  end
end

# ruby .smtp-ca/check.rb [--bulk] [--address HOST [--port N]] [--timeout SECONDS]
class TestArguments < Minitest::Test
  def parse(*argv)
    SmtpCaDynoCheck::Arguments.parse(argv)
  end

  def usage_error(*argv)
    assert_raises(SmtpCaDynoCheck::UsageError) { parse(*argv) }.message
  end

  def test_defaults_to_the_main_settings_and_ten_seconds
    options = parse
    refute options.bulk
    assert_in_delta 10.0, options.timeout
    assert_nil options.address
    assert_nil options.port
  end

  def test_reads_an_address_and_a_port_in_both_spellings
    options = parse('--address', 'smtp.example.com', '--port=2525')
    assert_equal ['smtp.example.com', 2525], [options.address, options.port]
    assert_equal '2001:db8::25', parse('--address=[2001:db8::25]').address
    assert_equal '192.0.2.1', parse('--address', '192.0.2.1').address
  end

  def test_refuses_a_port_without_an_address_and_bad_values
    assert_equal '--port goes with --address HOST.', usage_error('--port', '25')
    assert_equal "--address needs the SMTP server's host name.", usage_error('--address')
    assert_equal '--address "smtp.example.com:587": give the port on its own: --address ' \
                 'smtp.example.com --port 587.', usage_error('--address', 'smtp.example.com:587')
    ['smtp example.com', '-x', 'a/b', "evil\nline", ''].each do |host|
      assert_match(/\A--address ".*": give a host name or an IP address, such as /,
                   usage_error('--address', host))
    end
    assert_includes usage_error('--address', "evil\nline"), '"evil\\nline"' # no line break
    %w[0 65536 587x -1].each do |port|
      assert_equal "--port #{port.inspect}: give a port number from 1 to 65535, such as 587.",
                   usage_error('--address', 'localhost', '--port', port)
    end
    assert_equal 'unknown argument "--bulk=yes".', usage_error('--bulk=yes')
  end

  def test_reads_bulk_and_both_spellings_of_timeout
    assert parse('--bulk').bulk
    assert_in_delta 2.5, parse('--timeout', '2.5').timeout
    assert_in_delta 3.0, parse('--timeout=3').timeout
  end

  def refusal(value)
    assert_raises(SmtpCaDynoCheck::UsageError) { parse('--timeout', value) }.message
  end

  def test_refuses_a_timeout_that_is_not_plain_seconds_within_the_bound
    ['0', '-1', '1e3', '121', 'ten', '', '1e-300', '٣', '0.0009', "0.#{'0' * 299}1"[0, 300],
     '120.001', ' 5', '5 ', '.5', '5.'].each do |value|
      assert_equal "--timeout #{value.inspect}: give seconds from 0.001 to 120, in plain " \
                   'digits (10, 2.5).', refusal(value)
    end
    assert_in_delta 0.001, parse('--timeout', '0.001').timeout
    assert_in_delta 120.0, parse('--timeout', '120').timeout
    assert_in_delta 7.0, parse('--timeout', '0007.000').timeout
  end

  def test_a_refused_timeout_is_quoted_escaped_or_described_by_its_length
    assert_match(/\A--timeout "\\u202e5": give/, refusal("\u202e5"))
    assert_match(/\A--timeout "\\x1b\[2J\\n": give/, refusal("\e[2J\n"))
    assert_match(/\A--timeout "\uFFFD": give/, refusal("\xff".b))
    assert_match(/\A--timeout a value of 100,000 characters: give/, refusal('1' * 100_000))
    assert_match(/\A--timeout a value of 301 characters: give/, refusal("0.#{'0' * 298}1"))
  end

  def test_names_a_missing_timeout_and_an_unknown_argument
    error = assert_raises(SmtpCaDynoCheck::UsageError) { parse('--timeout') }
    assert_equal '--timeout needs a number of seconds.', error.message
    error = assert_raises(SmtpCaDynoCheck::UsageError) { parse('--bluk') }
    assert_equal 'unknown argument "--bluk".', error.message
  end
end

# Heroku-style lines, and the login and password taken out of them.
class TestOutput < Minitest::Test
  def output(*secrets)
    out = SmtpCaDynoCheck::Output.new
    secrets.each { |secret| out.add_secret(secret) }
    out
  end

  def test_writes_heroku_style_lines_to_stdout_and_stderr
    stdout, stderr = capture_io do
      out = output
      out.step('Checking')
      out.info('detail')
      out.warn('careful')
      out.error('broken')
    end
    assert_equal "-----> Checking\n       detail\n", stdout
    assert_equal " !     Warning: careful\n !     broken\n", stderr
  end

  def test_a_long_secret_goes_wherever_it_occurs
    out = output('SG.s3cret-password')
    assert_equal 'key=[REDACTED]; again [REDACTED]x',
                 out.redact('key=SG.s3cret-password; again SG.s3cret-passwordx')
  end

  def test_a_short_secret_goes_only_as_a_word_of_its_own
    out = output('smtp')
    assert_equal 'login [REDACTED] wrote smtp_ca.rb', out.redact('login smtp wrote smtp_ca.rb')
  end

  def test_punctuation_only_and_empty_values_are_not_secrets
    out = output('--', '', nil)
    assert_equal 'a -- b', out.redact('a -- b')
  end

  def test_the_inspected_form_of_a_secret_goes_too
    out = output("pass\"word\n")
    assert_equal 'answered "[REDACTED]"', out.redact('answered "pass\\"word\\n"')
  end
end

# Certificates and names as the report shows them.
class TestNames < Minitest::Test
  Names = SmtpCaDynoCheck::Names

  def setup
    @root_key = Certs.key
    @root = Certs.make('/O=Example Org/CN=Example Root CA', key: @root_key, authority: true)
    @leaf = Certs.make('/CN=mail.example.com', key: Certs.key, issuer: @root,
                                               issuer_key: @root_key,
                                               san: 'DNS:mail.example.com,IP:127.0.0.1')
  end

  def test_name_of_prefers_cn_then_ou_then_o_then_the_whole_name
    assert_equal 'Example Root CA', Names.name_of(@root.subject)
    assert_equal 'Unit', Names.name_of(OpenSSL::X509::Name.parse('/O=Org/OU=Unit'))
    assert_equal 'Org', Names.name_of(OpenSSL::X509::Name.parse('/C=DE/O=Org'))
    assert_equal '/C=DE', Names.name_of(OpenSSL::X509::Name.parse('/C=DE'))
  end

  def test_a_name_with_a_line_break_or_bidi_controls_cannot_forge_or_reorder_a_line
    name = OpenSSL::X509::Name.new([['CN', "evil\n !     Fix: none"]])
    assert_equal 'evil\\n !     Fix: none', Names.name_of(name)
    bidi = OpenSSL::X509::Name.new([['CN', "mail\u202Etxt.exe\e[2J"]])
    assert_equal 'mail\\u202etxt.exe\\x1b[2J', Names.name_of(bidi)
  end

  def test_a_long_name_is_cut_to_the_builds_length
    name = Names.name_of(OpenSSL::X509::Name.new([['CN', 'x' * 5000]]))
    assert_equal "#{'x' * 300}… (4,700 more characters)", name
  end

  def test_a_long_chain_lists_its_first_five_and_last_five_and_counts_the_rest
    key = Certs.key
    certs = (1..151).map { |number| Certs.make("/CN=Chain #{number}", key: key) }
    lines = Names.chain_lines(certs)
    assert_equal 11, lines.size
    assert_match(/\A  1\. Chain 1, issued by Chain 1, valid until /, lines[0])
    assert_match(/\A  5\. Chain 5, /, lines[4])
    assert_equal '  … 141 more', lines[5]
    assert_match(/\A  147\. Chain 147, /, lines[6])
    assert_match(/\A  151\. Chain 151, /, lines[10])
    assert_equal 10, Names.chain_lines(certs[0, 10]).size
  end

  def test_describes_a_certificate_and_a_chain_as_the_build_does
    until_text = Names.day(@leaf.not_after)
    assert_match(/\A\d{4}-\d\d-\d\d \d\d:\d\d UTC\z/, until_text)
    assert_equal ["  1. mail.example.com, issued by Example Root CA, valid until #{until_text}",
                  '  2. Example Root CA, issued by Example Root CA, valid until ' \
                  "#{Names.day(@root.not_after)}"],
                 Names.chain_lines([@leaf, @root])
  end

  def test_day_is_in_utc
    assert_equal '2031-05-03 07:00 UTC', Names.day(Time.new(2031, 5, 3, 9, 0, 0, '+02:00'))
  end
end

# Text from outside, by the build's rule (smtp_ca.untrusted): the same escapes and lengths.
class TestText < Minitest::Test
  Text = SmtpCaDynoCheck::Text

  def test_escapes_what_python_does_not_call_printable_as_python_does
    assert_equal '454 \\x1b[2J\\x1b]0;t\\x07\\r\\nnext', Text.escaped("454 \e[2J\e]0;t\a\r\nnext")
    assert_equal 'a\\tb\\x7f\\x85\\xa0c', Text.escaped("a\tb\x7f\u0085\u00a0c")
    assert_equal 'moc.\\u202eexe \\u2028 \\U000e0001',
                 Text.escaped("moc.\u202Eexe \u2028 \u{E0001}")
    assert_equal 'Főtanúsítvány a\\b', Text.escaped('Főtanúsítvány a\\b') # printable, kept
    assert_equal "caf\uFFFD ok", Text.escaped("caf\xC3 ok".b) # as Python decodes a reply
  end

  def test_cuts_after_the_limit_with_a_note_of_what_was_left_out
    assert_equal "#{'x' * 60}… (4,940 more characters)", Text.shown('x' * 5000, 60)
    assert_equal '\\x1b\\x1b… (8 more characters)', Text.shown("\e" * 10, 8)
    assert_equal "#{'y' * 300}… (1 more character)", Text.shown('y' * 301)
    assert_equal 'y' * 300, Text.shown('y' * 300)
  end

  def test_a_reply_is_quoted_as_its_code_and_its_lines_text
    assert_equal '554 go away', Text.reply("554 go away\n")
    assert_equal '454 TLS not available, line 0 TLS not available',
                 Text.reply("454-TLS not available, line 0\n454 TLS not available\n")
    assert_equal '554 \\x1b[2J\\u202eevil', Text.reply("554 \e[2J\u202Eevil\r\n")
    long = Text.reply("554-#{'z' * 100}\n" * 10)
    assert_equal "554 #{'z' * 100} #{'z' * 99}… (809 more characters)", long
    assert_equal 'no code here', Text.reply('no code here')
  end

  def test_groups_thousands_as_python_does
    grouped = [0, 999, 1000, 65_536, 1_234_567].map { |number| Text.grouped(number) }
    assert_equal %w[0 999 1,000 65,536 1,234,567], grouped
  end
end

# Every SMTP reply net-smtp reads, within the build's caps (smtp_session.py).
class TestReplyCaps < Minitest::Test
  def caps
    SmtpCaDynoCheck::ReplyCaps.new { 'reply to EHLO' }
  end

  def past(caps, *chunks)
    assert_raises(SmtpCaDynoCheck::ReplyPastCap) { chunks.each { |chunk| caps.feed(chunk) } }
      .message
  end

  def test_honest_replies_pass_and_what_is_not_bytes_passes_through
    watching = caps
    greeting = "220 mail.example.com ESMTP\r\n"
    assert_same greeting, watching.feed(greeting)
    assert_equal :wait_readable, watching.feed(:wait_readable)
    assert_nil watching.feed(nil)
    reply = "250-mail.example.com\r\n#{"250-X\r\n" * 198}250 STARTTLS\r\n" # 200 lines
    3.times { watching.feed(reply) } # each reply counts its own lines
    watching.feed('250-split ac') # a line read in pieces
    watching.feed("ross reads\r\n250 OK\r\n")
  end

  def test_a_reply_that_does_not_end_is_cut_at_its_line_cap
    assert_equal "the server's reply to EHLO ran past 200 lines",
                 past(caps, "250-#{'X' * 60}\r\n" * 2000)
    assert_equal "the server's reply to EHLO ran past 200 lines", past(caps, "250-X\n" * 200)
    watching = caps
    watching.feed("250-X\n" * 199)
    watching.feed("250 last\n")
  end

  def test_a_line_without_end_is_cut_at_its_length_cap
    assert_equal "the server's reply to EHLO has a line longer than 2,048 bytes",
                 past(caps, '250-', 'Y' * 1000, 'Y' * 1000, 'Y' * 1000)
    caps.feed("250 #{'Y' * 2043}\r\n") # 2,048 bytes before the "\n": the longest allowed
  end

  def test_a_reply_is_cut_at_its_byte_cap
    assert_equal "the server's reply to EHLO ran past 65,536 bytes",
                 past(caps, "250-#{'Z' * 1500}\r\n" * 60)
  end

  def test_the_reply_is_named_when_the_cap_is_hit
    names = %w[greeting first second]
    watching = SmtpCaDynoCheck::ReplyCaps.new { names.first }
    watching.feed("220-hello\n")
    names.shift
    assert_equal "the server's first ran past 200 lines", past(watching, "220-X\n" * 300)
  end
end

# What the session is doing, as the messages name it.
class TestProbe < Minitest::Test
  def reply_name(stage)
    probe = SmtpCaDynoCheck::Probe.new(false)
    probe.stage = stage
    probe.reply_name
  end

  def test_names_the_reply_being_read_as_the_build_does
    assert_equal 'greeting', reply_name('waiting for the SMTP greeting')
    assert_equal 'reply to EHLO', reply_name('waiting for the answer to EHLO')
    assert_equal 'reply to STARTTLS', reply_name('waiting for the answer to STARTTLS')
    assert_equal 'reply', reply_name('during the TLS handshake')
  end
end

# The name lookup, then the first address that takes the connection.
class TestLookup < Minitest::Test
  Lookup = SmtpCaDynoCheck::Lookup

  def test_a_numeric_address_is_its_own_lookup
    (found,) = Lookup.addresses('127.0.0.1', 587)
    assert_equal '127.0.0.1', found.ip_address
    refute Lookup.abandoned?
  end

  def test_raises_what_getaddrinfo_raised
    # A service name getaddrinfo refuses before any name server is asked.
    error = assert_raises(SocketError) { Lookup.addresses('127.0.0.1', 'no-such-service') }
    assert_match(/getaddrinfo/, error.message)
    refute Lookup.abandoned?
  end

  def test_connects_to_the_first_address_that_answers
    listening = TCPServer.new('127.0.0.1', 0)
    closed = TCPServer.new('127.0.0.1', 0)
    closed_port = closed.addr[1]
    closed.close
    addresses = [Addrinfo.tcp('127.0.0.1', closed_port),
                 Addrinfo.tcp('127.0.0.1', listening.addr[1])]
    tried = []
    socket = Lookup.first_to_answer(addresses) do |address|
      tried << address
      TCPSocket.new(address, tried.size == 1 ? closed_port : listening.addr[1])
    end
    assert_equal %w[127.0.0.1 127.0.0.1], tried
    socket.close
    assert_raises(Errno::ECONNREFUSED) do
      Lookup.first_to_answer(addresses[0, 1]) { |address| TCPSocket.new(address, closed_port) }
    end
  ensure
    listening&.close
  end
end

# How every line names the session.
class TestSession < Minitest::Test
  include CheckTestHelpers

  def test_where_names_host_port_and_mode_with_an_ipv6_address_in_brackets
    assert_equal 'smtp.example.com:587 (STARTTLS)', session.where
    assert_equal '[::1]:465 (TLS)', session(host: '::1', port: 465, implicit: true).where
  end

  def test_config_var_names_follow_the_settings_prefix
    assert_equal 'BULK_SMTP_SERVER', session(from: source('BULK_')).var('SMTP_SERVER')
  end
end

# Where the CA file came from, and the fix that goes with it.
class TestTrust < Minitest::Test
  include CheckTestHelpers

  def setup
    @app = File.realpath(Dir.mktmpdir)
    Dir.mkdir(File.join(@app, '.smtp-ca'))
    @bundle = File.join(@app, SmtpCaDynoCheck::BUNDLE_PATH)
    File.write(@bundle, '')
    @own = File.join(@app, 'own.pem')
    File.write(@own, '')
  end

  def teardown
    FileUtils.remove_entry(@app)
  end

  def trust(context)
    SmtpCaDynoCheck::Trust.new(context, source, @app)
  end

  def test_the_bundle_named_by_the_config_var
    with_env('SMTP_CA_FILE' => @bundle) do
      found = trust(context(ca_file: @bundle))
      assert_equal :bundle, found.origin
      assert_equal 'the bundle the build wrote (.smtp-ca/ca-bundle.pem), named by SMTP_CA_FILE',
                   found.describe_origin
    end
  end

  def test_the_bundle_named_by_the_settings_and_a_relative_path
    with_env('SMTP_CA_FILE' => nil) do
      found = trust(context(ca_file: '.smtp-ca/ca-bundle.pem'))
      assert_equal :bundle, found.origin
      assert_match(/named by the app's settings\z/, found.describe_origin)
    end
  end

  def test_another_file_from_the_config_var_or_the_settings
    with_env('SMTP_CA_FILE' => @own) do
      found = trust(context(ca_file: @own))
      assert_equal :config_var, found.origin
      assert_match(/\AUse the bundle: heroku config:unset SMTP_CA_FILE/,
                   found.fix('the CA certificate X').split('. ', 2).last)
    end
    with_env('SMTP_CA_FILE' => nil) do
      assert_equal :settings, trust(context(ca_file: @own)).origin
    end
  end

  def test_no_ca_file_and_the_config_var_names_a_missing_file
    with_env('SMTP_CA_FILE' => '/nowhere/ca.pem') do
      found = trust(context)
      assert_equal :none, found.origin
      assert_equal "OpenSSL's default store", found.label
      assert_equal 'SMTP_CA_FILE is set to /nowhere/ca.pem, which does not exist on this dyno.',
                   found.unused_config_var
      assert_match(/\ASMTP_CA_FILE names a file that is not on the dyno/, found.fix('X'))
    end
  end

  def test_an_app_that_is_not_mastodon_gets_smtp_ca_file_too
    other_app = source(mastodon: false)
    assert_equal 'SMTP_CA_FILE', other_app.var('SMTP_CA_FILE')
    with_env('SMTP_CA_FILE' => '/nowhere/ca.pem') do
      found = SmtpCaDynoCheck::Trust.new(context, other_app, @app)
      assert_equal 'SMTP_CA_FILE is set to /nowhere/ca.pem, which does not exist on this dyno.',
                   found.unused_config_var
    end
    with_env('SMTP_CA_FILE' => @own) do
      assert_equal :config_var, SmtpCaDynoCheck::Trust.new(context(ca_file: @own), other_app,
                                                           @app).origin
    end
  end

  def test_old_net_smtp_has_no_default_store
    refute trust(context(default_store: false)).default_store
    assert trust(nil).default_store # net-smtp makes its own context: the default store
  end

  def test_a_ca_file_the_delivery_rules_filled_in
    with_env('SMTP_CA_FILE' => @bundle) do
      found = SmtpCaDynoCheck::Trust.new(context(ca_file: @bundle), source, @app, rules(@app))
      assert found.filled?
      assert_equal :bundle, found.origin
      assert_match(/named by SMTP_CA_FILE\z/, found.describe_origin)
    end
    with_env('SMTP_CA_FILE' => @own) do
      found = SmtpCaDynoCheck::Trust.new(context(ca_file: @own), source('BULK_'), @app,
                                         rules(@app))
      assert_equal :config_var, found.origin # filled in from SMTP_CA_FILE, whatever the prefix
      assert_equal 'the config var SMTP_CA_FILE, not the bundle the build wrote ' \
                   '(.smtp-ca/ca-bundle.pem)', found.describe_origin
    end
  end

  def test_the_apps_own_ca_file_is_named_with_its_setting_and_left_alone
    with_env('SMTP_CA_FILE' => @bundle) do
      found = SmtpCaDynoCheck::Trust.new(context(ca_file: @own), source, @app,
                                         rules(@app, { ca_file: @own }))
      assert_equal :settings, found.origin
      assert_equal "the app's own settings (ca_file in ActionMailer::Base.smtp_settings), not " \
                   'the bundle the build wrote (.smtp-ca/ca-bundle.pem)', found.describe_origin
      assert_equal "The app's settings name their own ca_file, #{@own}, and the buildpack " \
                   'leaves settings that name a ca_file or a ca_path as the app wrote them, so ' \
                   'its deliveries do not get the bundle. Remove ca_file from ' \
                   'ActionMailer::Base.smtp_settings (every delivery then gets the bundle the ' \
                   "build wrote, #{@bundle}), or add X to #{@own}.", found.fix('X')
    end
  end

  def test_no_ca_file_names_why_the_rules_gave_none
    with_env('SMTP_CA_FILE' => nil) do
      missing = SmtpCaDynoCheck::Trust.new(context, source, @app, rules(@app))
      assert_equal :none, missing.origin
      assert_match(/\AThe bundle the build wrote, .*ca-bundle.pem, is not on this dyno: deploy /,
                   missing.fix('X'))
      string_key = SmtpCaDynoCheck::Trust.new(context, source, @app,
                                              rules(@app, { 'ca_file' => @own }))
      assert_match(/\AThe settings name ca_file by the string "ca_file", which the mail gem /,
                   string_key.fix('X'))
      absent = SmtpCaDynoCheck::Trust.new(context, source, @app, rules(@app, hooked: false))
      assert_match(/, so deliveries do not get the bundle\. Deploy again with the buildpack/,
                   absent.fix('X'))
    end
  end
end

# The lines before the handshake: the server, the CA file, the verify mode.
class TestReport < Minitest::Test
  include CheckTestHelpers

  def report_lines(verify_mode, shown, checked_rules: nil)
    Dir.mktmpdir do |dir|
      file = File.join(dir, 'ca.pem')
      File.write(file, Certs.make('/CN=Root', key: Certs.key, authority: true).to_pem * 2)
      used = context(ca_file: file)
      used.verify_mode = verify_mode
      trust = SmtpCaDynoCheck::Trust.new(used, source, dir, checked_rules)
      checked = session(trust: trust)
      checked.context = used
      checked.rules = checked_rules
      printed = capture_io do
        SmtpCaDynoCheck::Report.new(SmtpCaDynoCheck::Output.new, checked)
                               .setup({ openssl_verify_mode: shown })
      end
      printed.map { |text| text.split("\n") } << file
    end
  end

  def test_reports_the_server_the_ca_file_and_a_verifying_mode
    stdout, stderr, file = report_lines(OpenSSL::SSL::VERIFY_PEER, 'peer')
    assert_includes stdout, '       Server: smtp.example.com:587, STARTTLS when the server ' \
                            'offers it'
    assert_includes stdout, "       ca_file: #{file}, from the app's own settings (ca_file in " \
                            'ActionMailer::Base.smtp_settings), not the bundle the build wrote ' \
                            '(.smtp-ca/ca-bundle.pem): exists, 2 certificates'
    assert_includes stdout, '       ca_path: not set'
    assert_includes stdout, '       Verify mode: peer (openssl_verify_mode: peer)'
    assert_empty stderr
  end

  def test_warns_when_the_deliveries_do_not_verify
    stdout, stderr, = report_lines(OpenSSL::SSL::VERIFY_NONE, 'none')
    assert_includes stdout, '       Verify mode: none (openssl_verify_mode: none)'
    assert_equal [" !     Warning: deliveries do not verify the server's certificate: an " \
                  "impostor answering for smtp.example.com would get the app's mail and its " \
                  'SMTP password. This check verifies anyway, to say whether peer would work.'],
                 stderr
  end

  def test_an_unset_verify_mode_is_shown_as_not_set
    stdout, = report_lines(OpenSSL::SSL::VERIFY_PEER, nil)
    assert_includes stdout, '       Verify mode: peer (openssl_verify_mode: not set)'
    stdout, = report_lines(nil, nil)
    assert_includes stdout, '       Verify mode: none (openssl_verify_mode: not set: without ' \
                            'one, this mail gem and net/smtp verify nothing)'
  end

  def test_says_what_the_delivery_rules_did
    Dir.mktmpdir do |app|
      filled = rules(app, { ca_file: '/app/own.pem' })
      stdout, = report_lines(OpenSSL::SSL::VERIFY_PEER, nil, checked_rules: filled)
      assert_includes stdout, '       The settings name their own ca_file: deliveries use it as ' \
                              'the app wrote it (.smtp-ca/delivery.rb fills in ca_file only ' \
                              'where the settings name none).'
      assert_includes stdout, '       Verify mode: peer (openssl_verify_mode: not set; ' \
                              '.smtp-ca/delivery.rb fills in peer at each delivery, as ' \
                              'net-smtp 0.2.0 and later do)'
      absent = rules(app, hooked: false)
      stdout, = report_lines(OpenSSL::SSL::VERIFY_PEER, nil, checked_rules: absent)
      assert_includes stdout, '       Not in place: .smtp-ca/delivery.rb, because ' \
                              '.smtp-ca/delivery.rb or config/initializers/smtp_ca.rb, which ' \
                              'loads it, is not on this dyno.'
    end
  end

  def test_warns_of_a_verify_default_it_does_not_know
    Dir.mktmpdir do |app|
      with_env('SMTP_CA_VERIFY_DEFAULT' => 'nope') do
        filled = rules(app, { openssl_verify_mode: 'peer' })
        _, stderr, = report_lines(OpenSSL::SSL::VERIFY_PEER, 'peer', checked_rules: filled)
        assert_equal [' !     Warning: SMTP_CA_VERIFY_DEFAULT is "nope", which is neither peer ' \
                      'nor off: deliveries take it as peer.'], stderr
      end
    end
  end
end

# The verify mode a delivery ends up with: why it verifies nothing, and the fix in the app's
# own words.
class TestVerifyMode < Minitest::Test
  include CheckTestHelpers

  def verify_mode(settings, mode, mastodon: true, checked_rules: nil)
    used = context
    used.verify_mode = mode
    checked = SmtpCaDynoCheck::Session.new(source('', mastodon: mastodon), nil, used,
                                           'smtp.example.com', 587, false, :auto, 10.0,
                                           checked_rules)
    SmtpCaDynoCheck::VerifyMode.new(checked, settings)
  end

  def test_mode_none_named_by_mastodon_or_by_the_apps_own_settings
    mastodon = verify_mode({ openssl_verify_mode: 'none' }, OpenSSL::SSL::VERIFY_NONE)
    refute mastodon.verifies?
    assert_equal 'its settings name openssl_verify_mode none', mastodon.reason
    assert_equal 'Set SMTP_OPENSSL_VERIFY_MODE to peer: heroku config:set ' \
                 'SMTP_OPENSSL_VERIFY_MODE=peer', mastodon.fix
    other = verify_mode({ openssl_verify_mode: 'none' }, 0, mastodon: false)
    assert_equal "Make the app's settings say openssl_verify_mode: 'peer' (where it sets " \
                 'ActionMailer::Base.smtp_settings).', other.fix
    refute_includes other.fix, 'SMTP_OPENSSL_VERIFY_MODE'
  end

  def test_unset_and_turned_off_names_the_config_var_to_unset
    Dir.mktmpdir do |app|
      with_env('SMTP_CA_VERIFY_DEFAULT' => 'off') do
        off = verify_mode({}, nil, checked_rules: rules(app))
        refute off.verifies?
        assert_equal 'openssl_verify_mode: not set, and SMTP_CA_VERIFY_DEFAULT=off leaves it ' \
                     'so: without one, this mail gem and net/smtp verify nothing', off.words
        assert_equal 'its settings name no openssl_verify_mode and SMTP_CA_VERIFY_DEFAULT=off',
                     off.reason
        assert_equal 'Let the buildpack fill in peer at each delivery: heroku config:unset ' \
                     'SMTP_CA_VERIFY_DEFAULT', off.fix
      end
    end
  end

  def test_unset_without_the_rules_in_place_names_why_first
    Dir.mktmpdir do |app|
      absent = verify_mode({}, nil, mastodon: false, checked_rules: rules(app, hooked: false))
      assert_match(/\Aits settings name no openssl_verify_mode and the buildpack's delivery rules /,
                   absent.reason)
      assert_equal 'Deploy again with the buildpack: it writes both on every build. Or: Make ' \
                   "the app's settings say openssl_verify_mode: 'peer' (where it sets " \
                   'ActionMailer::Base.smtp_settings).', absent.fix
    end
  end

  def test_a_mode_the_rules_filled_in_verifies
    Dir.mktmpdir do |app|
      filled = rules(app)
      assert_equal OpenSSL::SSL::VERIFY_PEER, filled.completion.settings[:openssl_verify_mode]
      completed = verify_mode(filled.completion.settings, OpenSSL::SSL::VERIFY_PEER,
                              checked_rules: filled)
      assert completed.verifies?
      assert_match(/\Aopenssl_verify_mode: not set; .smtp-ca.delivery.rb fills in peer /,
                   completed.words) # the number the rules filled in is not the app's mode
    end
  end
end

# Which settings the check takes: a server named, and whether they are Mastodon's.
class TestMainSettings < Minitest::Test
  include CheckTestHelpers

  MainSettings = SmtpCaDynoCheck::MainSettings

  def test_actionmailers_default_names_no_server
    refute MainSettings.names_server?({ address: 'localhost', port: 25 })
    refute MainSettings.names_server?({ address: 'localhost' })
    refute MainSettings.names_server?({ address: nil, port: 587 })
    refute MainSettings.names_server?({ 'address' => ' ' })
    assert MainSettings.names_server?({ address: 'localhost', port: 2525 })
    assert MainSettings.names_server?({ address: 'smtp.example.com' })
    assert MainSettings.names_server?({ 'address' => 'smtp.example.com', 'port' => '25' })
  end

  def test_mastodon_is_told_by_its_variables
    with_env('SMTP_SERVER' => 'smtp.example.com') do
      assert MainSettings.mastodon?({ address: 'smtp.example.com' })
      refute MainSettings.mastodon?({ address: 'smtp.other.example' })
    end
    with_env('SMTP_SERVER' => nil) { refute MainSettings.mastodon?({ address: 'x' }) }
  end

  def test_nothing_to_check_says_how_to_name_a_server
    failure = MainSettings.no_server(source)
    assert_kind_of SmtpCaDynoCheck::Failure, failure
    assert_match(/\Anothing to check: ActionMailer::Base.smtp_settings name no server/,
                 failure.message)
    assert_match(/ruby .smtp-ca.check.rb --address HOST --port PORT\z/, failure.hint)
  end

  def test_an_address_replaces_the_server_and_keeps_the_rest
    base = SmtpCaDynoCheck::App::Source.new('ActionMailer::Base.smtp_settings',
                                            { address: 'localhost', port: 25, tls: true }, '',
                                            false)
    given = base.with_server('smtp.example.com', 465)
    assert_equal({ address: 'smtp.example.com', port: 465, tls: true }, given.settings)
    assert_equal 'ActionMailer::Base.smtp_settings with --address smtp.example.com --port 465',
                 given.label
    assert_equal 25, base.with_server('smtp.example.com', nil).settings[:port]
  end
end

# Why the app's boot did not hook the delivery rules, found from its files.
class TestDeliveryRulesAbsence < Minitest::Test
  include CheckTestHelpers

  def setup
    @app = Dir.mktmpdir
    FileUtils.mkdir_p(File.join(@app, '.smtp-ca'))
    FileUtils.mkdir_p(File.join(@app, 'config', 'initializers'))
    File.write(File.join(@app, '.smtp-ca', 'delivery.rb'), '')
  end

  def teardown
    FileUtils.remove_entry(@app)
  end

  def absence(initializer)
    path = File.join(@app, 'config', 'initializers', 'smtp_ca.rb')
    File.write(path, initializer) if initializer
    rules(@app, hooked: false).absence
  end

  def test_the_apps_own_initializer
    reason, fix = absence("# ours\n")
    assert_equal "the app's own config/initializers/smtp_ca.rb (the build keeps it) did not " \
                 'hook .smtp-ca/delivery.rb into the mail gem', reason
    assert_match(/\ADelete config.initializers.smtp_ca.rb from the app and deploy again/, fix)
  end

  def test_the_buildpacks_initializer_that_did_not_hook
    reason, fix = absence("# Generated by heroku-buildpack-smtp-ca on every build\n")
    assert_match(/\Aconfig.initializers.smtp_ca.rb did not hook .* when the app booted\z/, reason)
    assert_match(/starts with heroku-buildpack-smtp-ca: says why/, fix)
  end

  def test_no_initializer
    reason, fix = absence(nil)
    assert_match(/is not on this dyno\z/, reason)
    assert_match(/\ADeploy again with the buildpack/, fix)
  end
end

# Failures outside certificate verification.
class TestDiagnosis < Minitest::Test
  include CheckTestHelpers

  def setup
    @app = Dir.mktmpdir
  end

  def teardown
    FileUtils.remove_entry(@app)
  end

  def diagnosis(implicit: false, ca_file: nil)
    trust = SmtpCaDynoCheck::Trust.new(context(ca_file: ca_file), source, @app)
    SmtpCaDynoCheck::Diagnosis.new(session(trust: trust, implicit: implicit), @app)
  end

  def test_a_silent_server_on_the_starttls_port_may_want_tls_from_the_first_byte
    failure = diagnosis.timeout_failure('waiting for the SMTP greeting')
    assert_equal 'smtp.example.com:587 (STARTTLS): no answer within 10 s (waiting for the SMTP ' \
                 'greeting).', failure.message
    assert_equal 'A server that says nothing after the connection may expect TLS from the first ' \
                 'byte (port 465 usually does): set SMTP_TLS=true. Otherwise check SMTP_SERVER ' \
                 'and SMTP_PORT (a firewall may drop the connection), or raise --timeout.',
                 failure.hint
    assert_match(/\ACheck SMTP_SERVER/, diagnosis(implicit: true).timeout_failure('x').hint)
  end

  def test_a_socket_closed_in_the_handshake_points_at_the_tls_mode
    failure = diagnosis.connection_failure(EOFError.new('end of file reached'),
                                           'during the TLS handshake')
    assert_equal 'smtp.example.com:587 (STARTTLS): the server closed the connection during the ' \
                 'TLS handshake.', failure.message
    assert_equal 'Check SMTP_PORT and SMTP_TLS: port 465 usually wants SMTP_TLS=true.',
                 failure.hint
  end

  def test_a_lookup_that_ran_out_of_time_says_so
    failure = diagnosis.timeout_failure('resolving the host name')
    assert_equal 'smtp.example.com:587 (STARTTLS): no answer within 10 s (resolving the host ' \
                 'name).', failure.message
    assert_equal "The dyno's name server did not answer for smtp.example.com in time: check " \
                 'SMTP_SERVER for a typo, or raise --timeout.', failure.hint
  end

  def test_a_reply_past_a_cap_says_what_the_server_did
    error = SmtpCaDynoCheck::ReplyPastCap.new("the server's greeting ran past 200 lines")
    failure = diagnosis.reply_past_cap(error)
    assert_equal "smtp.example.com:587 (STARTTLS): the server's greeting ran past 200 lines.",
                 failure.message
    assert_equal "A mail server's replies are a few short lines; this one did not stop. Check " \
                 "that SMTP_SERVER and SMTP_PORT name your provider's mail server, and ask the " \
                 'provider if they do.', failure.hint
  end

  def test_the_servers_reply_is_quoted_escaped_and_cut
    # net-smtp's message is the reply's first line.
    response = Net::SMTP::Response.parse("554 \e[2Jgo \u202Eaway#{'!' * 400}\r\n")
    # As net-smtp raises it: with the response (0.3 and later), or its message (Ruby 2.7).
    raised = Net::SMTPError.method_defined?(:response) ? response : response.message
    failure = diagnosis.connection_failure(Net::SMTPFatalError.new(raised),
                                           'waiting for the SMTP greeting')
    assert_equal 'smtp.example.com:587 (STARTTLS): the server answered "554 \\x1b[2Jgo ' \
                 "\\u202eaway#{'!' * 180}… (220 more characters)\" (waiting for the SMTP " \
                 'greeting).', failure.message
  end

  def test_a_certificate_message_over_openssls_limit_is_not_blamed_on_the_port
    error = OpenSSL::SSL::SSLError.new('SSL_connect returned=1 errno=0 peeraddr=127.0.0.1:587 ' \
                                       'state=error: excessive message size')
    failure = diagnosis.tls_failure(error, FakeProbe.new(nil, nil, nil))
    assert_equal "smtp.example.com:587 (STARTTLS): the server's certificates are more than " \
                 'OpenSSL accepts in a handshake (excessive message size): a certificate with ' \
                 'thousands of names, or a chain of hundreds of certificates.', failure.message
    assert_match(/\AOnly the mail provider can fix this/, failure.hint)
    refute_match(/port 465/, failure.hint)
  end

  def test_an_app_that_is_not_mastodon_hears_of_its_settings_not_of_mastodons_variables
    other_app = source(mastodon: false)
    trust = SmtpCaDynoCheck::Trust.new(context, other_app, @app)
    other = SmtpCaDynoCheck::Diagnosis.new(session(trust: trust, from: other_app), @app)
    assert_equal 'Check the :address setting for a typo.',
                 other.connection_failure(SocketError.new('nope'), 'connecting').hint
    assert_equal 'Check the :port setting and the :tls setting: port 465 usually wants tls: true.',
                 other.connection_failure(EOFError.new('eof'), 'during the TLS handshake').hint
    hints = [other.timeout_failure('waiting for the SMTP greeting').hint, other.no_starttls.hint,
             other.reply_past_cap(SmtpCaDynoCheck::ReplyPastCap.new('x')).hint]
    assert_match(/set tls: true\. Otherwise check the :address setting and the :port setting/,
                 hints[0])
    hints.each { |hint| refute_match(/SMTP_/, hint) }
  end

  def test_a_server_given_with_address_is_named_by_the_options
    given = source(mastodon: false).with_server('mx.example.com', 2525)
    assert_equal '--address', given.var('SMTP_SERVER')
    assert_equal '--port', given.var('SMTP_PORT')
    assert_equal 'the :tls setting', given.var('SMTP_TLS')
    assert_equal 'SMTP_TLS=true', source.assignment('SMTP_TLS', 'true')
  end

  def test_a_refused_connection_and_a_name_that_does_not_resolve
    refused = diagnosis.connection_failure(Errno::ECONNREFUSED.new, 'connecting')
    assert_equal 'smtp.example.com:587 (STARTTLS): connection refused.', refused.message
    unresolved = diagnosis.connection_failure(SocketError.new('getaddrinfo: nope'), 'connecting')
    assert_equal 'Check SMTP_SERVER for a typo.', unresolved.hint
  end

  def test_a_missing_ca_file_is_found_before_any_connection
    error = assert_raises(SmtpCaDynoCheck::Failure) do
      diagnosis(ca_file: File.join(@app, 'gone.pem')).check_ca_files
    end
    assert_match(/the ca_file .*gone.pem does not exist on this dyno/, error.message)
  end

  def test_a_ca_file_without_pem
    file = File.join(@app, 'empty.pem')
    File.write(file, 'not a certificate')
    error = assert_raises(SmtpCaDynoCheck::Failure) { diagnosis(ca_file: file).check_ca_files }
    assert_equal "smtp.example.com:587 (STARTTLS): the ca_file #{file} holds no PEM certificate, " \
                 'so OpenSSL cannot load it and every delivery fails.', error.message
  end
end

# Why verification failed: what the dyno alone knows (the file the app trusts, who named it),
# and the build's explanation pointed at for the rest.
class TestCertificateDiagnosis < Minitest::Test
  include CheckTestHelpers

  def setup
    @root_key = Certs.key
    @root = Certs.make('/CN=Provider Root CA', key: @root_key, authority: true)
    @int_key = Certs.key
    @int = Certs.make('/CN=Provider Intermediate', key: @int_key, issuer: @root,
                                                   issuer_key: @root_key, authority: true)
    @leaf = Certs.make('/CN=mail.example.com', key: Certs.key, issuer: @int,
                                               issuer_key: @int_key)
    @app = Dir.mktmpdir
  end

  def teardown
    FileUtils.remove_entry(@app)
  end

  # What tls_failure makes of OpenSSL's code and message, with the chain it had built.
  def diagnose(code, message, chain, used = context)
    trust = SmtpCaDynoCheck::Trust.new(used, source, @app)
    diagnosis = SmtpCaDynoCheck::Diagnosis.new(session(trust: trust), @app)
    diagnosis.tls_failure(OpenSSL::SSL::SSLError.new('certificate verify failed'),
                          FakeProbe.new(nil, chain, { code: code, message: message }))
  end

  def test_no_anchor_names_the_file_the_app_trusts_and_the_fix_for_it
    failure = diagnose(20, 'unable to get local issuer certificate', [@leaf])
    assert_equal 'smtp.example.com:587 (STARTTLS): certificate verify failed: no certificate in ' \
                 "OpenSSL's default store anchors the server's chain (unable to get local issuer " \
                 'certificate).', failure.message
    assert_equal 'The server presented:', failure.details.first
    with_env('SMTP_CA_FILE' => File.join(@app, 'own.pem')) do
      File.write(File.join(@app, 'own.pem'), @root.to_pem)
      own = diagnose(19, 'self-signed certificate in certificate chain', [@leaf, @int, @root],
                     context(ca_file: File.join(@app, 'own.pem')))
      assert_match(/ no certificate in .*own.pem or OpenSSL's default store anchors /, own.message)
      assert_equal 'It comes from the config var SMTP_CA_FILE, not the bundle the build wrote ' \
                   '(.smtp-ca/ca-bundle.pem).', own.details.first
      assert_match(/; or add the CA certificate Provider Root CA to .*own.pem\.\z/, own.hint)
    end
  end

  def test_old_net_smtp_without_a_ca_file_trusts_nothing
    failure = diagnose(20, 'unable to get local issuer certificate', [@leaf],
                       context(default_store: false))
    assert_match(/: certificate verify failed: the app trusts no certificate at all: /,
                 failure.message)
  end

  def test_other_causes_point_at_the_builds_explanation
    { 10 => 'certificate has expired', 62 => 'hostname mismatch',
      18 => 'self-signed certificate' }.each do |code, message|
      failure = diagnose(code, message, [@leaf, @int])
      assert_equal 'smtp.example.com:587 (STARTTLS): certificate verify failed ' \
                   "(#{message}, OpenSSL code #{code}).", failure.message
      assert_equal 'The server presented:', failure.details.first
      assert_equal "The build's check explains the certificate's cause: see the build log, or " \
                   'run bin/check HOST:PORT from a checkout of this buildpack.', failure.hint
    end
  end

  def test_an_older_net_smtps_host_name_mismatch_too
    trust = SmtpCaDynoCheck::Trust.new(context, source, @app)
    diagnosis = SmtpCaDynoCheck::Diagnosis.new(session(trust: trust), @app)
    error = OpenSSL::SSL::SSLError.new('hostname "smtp.example.com" does not match the server ' \
                                       'certificate')
    failure = diagnosis.tls_failure(error, FakeProbe.new(nil, nil, nil))
    assert_equal 'smtp.example.com:587 (STARTTLS): certificate verify failed (hostname ' \
                 '"smtp.example.com" does not match the server certificate).', failure.message
    assert_match(/\AThe build's check explains/, failure.hint)
  end
end

# What the build found about revocation, read from the file it wrote beside the check.
class TestRevocation < Minitest::Test
  WHERE = 'smtp.example.com:587 (STARTTLS)'

  def setup
    @dir = Dir.mktmpdir
    @path = File.join(@dir, 'revocation.txt')
  end

  def teardown
    FileUtils.remove_entry(@dir)
  end

  def write(*findings)
    lines = ['# Generated by heroku-buildpack-smtp-ca on every build; edits here are overwritten.',
             "checked-at\t2026-11-30 10:00 UTC"]
    findings.each { |where, status, line| lines << "finding\t#{where}\t#{status}\t#{line}" }
    File.write(@path, lines.map { |line| "#{line}\n" }.join)
  end

  def lines
    SmtpCaDynoCheck::Revocation.lines(@path, WHERE)
  end

  def test_says_what_the_build_found_for_this_server_only
    write([WHERE, 'good', 'Revocation: not revoked, says the CRL at http://crl.example/1.crl.'],
          ['bulk.example.com:587 (STARTTLS)', 'good', 'Revocation: not revoked, says X.'],
          [WHERE, 'unchecked', 'Revocation of the intermediate CA: not checked, it names none.'])
    assert_equal [[:info, "What the build's check found about revocation on 2026-11-30 10:00 " \
                          "UTC (Ruby's OpenSSL checks no revocation when the app sends mail):"],
                  [:info, '  Revocation: not revoked, says the CRL at http://crl.example/1.crl.'],
                  [:info, '  Revocation of the intermediate CA: not checked, it names none.']],
                 lines
  end

  def test_a_revoked_certificate_is_a_warning
    write([WHERE, 'revoked', 'Revocation: revoked on 2026-11-29 (keyCompromise), says the CRL.'])
    assert_equal [:warn, 'Revocation: revoked on 2026-11-29 (keyCompromise), says the CRL.'],
                 lines.last
  end

  def test_says_so_when_the_build_recorded_nothing_for_this_server
    write(['other.example.com:25 (STARTTLS)', 'good', 'Revocation: not revoked.'])
    assert_equal [[:info, "Revocation: the build recorded nothing for #{WHERE} in " \
                          '.smtp-ca/revocation.txt (it checks revocation where it verifies the ' \
                          "server); Ruby's OpenSSL checks no revocation when the app sends mail."]],
                 lines
  end

  def test_a_missing_file_is_a_note_not_a_crash
    level, line = lines.first
    assert_equal :info, level
    assert_match(/\ARevocation: not known here: .smtp-ca.revocation.txt cannot be read \(/, line)
    assert_match(/No such file or directory/, line)
  end

  def test_text_is_made_printable_cut_and_capped
    long = "Revocation: \e[31m#{'x' * 2000}"
    write(*Array.new(30) { [WHERE, 'good', long] })
    found = lines
    assert_equal 1 + SmtpCaDynoCheck::Revocation::MAX_LINES, found.size
    _level, line = found.last
    shown = "Revocation: \\x1b[31m#{'x' * 2000}"[0, SmtpCaDynoCheck::Revocation::MAX_LINE]
    # Cut as the build cuts outside text, with the count of what was left out.
    assert_equal "  #{shown}… (1,520 more characters)", line
    File.write(@path, "finding\t#{WHERE}\tgood\t#{'y' * 100_000}\n")
    _level, line = lines.last
    assert_operator line.length, :<=, SmtpCaDynoCheck::Revocation::MAX_LINE + 30
  end
end
