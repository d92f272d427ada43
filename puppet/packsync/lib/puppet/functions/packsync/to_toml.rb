# frozen_string_literal: true

# Renders a hash as a TOML document: the site config from the class's parameters. Puppet has
# no TOML writer of its own, and the site config needs only strings, numbers, booleans, arrays,
# tables and arrays of tables (`[[pack]]`, `[pack.config]`).
Puppet::Functions.create_function(:'packsync::to_toml') do
  # @param data The document: each key a table, an array of tables, or a value.
  # @return [String] The TOML text; keys whose value is undef are left out.
  dispatch :to_toml do
    param 'Hash', :data
  end

  def to_toml(data)
    lines = []
    table(lines, [], data)
    lines.join("\n") + "\n"
  end

  private

  def table(lines, path, hash)
    entries = hash.reject { |_, value| value.nil? }
    tables, values = entries.partition { |_, value| value.is_a?(Hash) || array_of_tables?(value) }
    values.each { |key, value| lines << "#{key(key)} = #{value(value, path + [key])}" }
    tables.each do |key, value|
      inner = path + [key]
      name = inner.map { |part| key(part) }.join('.')
      if value.is_a?(Hash)
        lines << '' << "[#{name}]"
        table(lines, inner, value)
      else
        value.each do |item|
          lines << '' << "[[#{name}]]"
          table(lines, inner, item)
        end
      end
    end
  end

  def array_of_tables?(value)
    value.is_a?(Array) && !value.empty? && value.all? { |item| item.is_a?(Hash) }
  end

  def key(name)
    name = name.to_s
    name.match?(%r{\A[A-Za-z0-9_-]+\z}) ? name : string(name)
  end

  def value(value, path)
    case value
    when String then string(value)
    when Integer, Float, true, false then value.to_s
    when Array then "[#{value.map { |item| value(item, path) }.join(', ')}]"
    when Hash then "{ #{value.reject { |_, v| v.nil? }.map { |k, v| "#{key(k)} = #{value(v, path)}" }.join(', ')} }"
    else
      raise Puppet::ParseError, "packsync::to_toml: #{path.join('.')} is a #{value.class}, which TOML cannot hold"
    end
  end

  # A TOML basic string: quotes, backslashes and control characters escaped.
  def string(text)
    escaped = text.gsub(%r{["\\\u0000-\u001f\u007f]}) do |char|
      case char
      when '"' then '\\"'
      when '\\' then '\\\\'
      when "\n" then '\\n'
      when "\t" then '\\t'
      else format('\\u%04X', char.ord)
      end
    end
    "\"#{escaped}\""
  end
end
